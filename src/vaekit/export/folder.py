"""`--format folder`: a model folder in the layout of a Hugging Face Hub model repository.

    config.json         the run's resolved configuration (data_dir cleared), as in a run
    model.safetensors   the weights only, as `--format safetensors` writes them
    README.md           the model card (`export.card`)

`vaekit.load(DIR)` and the commands that take a run (sample, reconstruct,
evaluate, explore, plot) read such a folder; `huggingface-cli upload` publishes it.
"""

from __future__ import annotations

from pathlib import Path

from vaekit import api, checkpoint, pretrained
from vaekit.export.card import render
from vaekit.export.options import ExportOptions
from vaekit.files import write_atomic
from vaekit.runfolder import CONFIG, EVAL, MODEL_CARD, MODEL_WEIGHTS, RunFolder


def write(source: Path, out: Path, options: ExportOptions) -> list[Path]:
    """The model folder of `source` at `out`; its card shows `options.eval_files`' figures
    (default: the run's eval.json, when it was evaluated)."""
    base = source if source.is_dir() else source.parent
    names = options.eval_files or ((EVAL,) if (base / EVAL).is_file() else ())
    evals = tuple(str((base / name).resolve()) for name in names)  # absolute: any source
    out.mkdir(parents=True, exist_ok=True)
    weights = pretrained.export(source, out / MODEL_WEIGHTS, evals, options.half)
    model = api.load(weights, "cpu")
    config = model.run_config
    config_path = write_atomic(out / CONFIG, config.to_json())
    results = [r for r in (RunFolder(base).read_eval(path) for path in evals) if r is not None]
    parameters = sum(p.numel() for p in model.parameters())
    epoch = checkpoint.load(weights).progress.get("epoch")
    text = render(out.resolve().name, config, model.image_shape, parameters, epoch, results)
    return [config_path, weights, write_atomic(out / MODEL_CARD, text)]
