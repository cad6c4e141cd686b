"""The README.md model card of a model folder: what the model is, what it was trained on,
and what it measured, with the command that measured it.

The front matter is the Hugging Face Hub's model-card metadata (library, tags,
datasets), so the folder reads as a model repository once uploaded.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vaekit._version import __version__
from vaekit.config import EvalConfig, RunConfig, flag_name
from vaekit.evaluation.result import EvalResult
from vaekit.models import MODELS
from vaekit.report import eval_rows

# vaekit's dataset names -> the Hub's dataset ids, for the card's `datasets:` field
HUB_DATASETS = {"mnist": "ylecun/mnist", "fashion-mnist": "zalando-datasets/fashion_mnist"}


def evaluate_command(result: EvalResult, where: str) -> str:
    """The `vaekit evaluate` line that measures `where` as `result` was measured."""
    words = ["vaekit", "evaluate", where]
    for f in dataclasses.fields(EvalConfig):
        value = result.config.get(f.name, f.default)
        if value == f.default or f.name == "device":
            continue
        flag = "-k" if f.name == "k" else flag_name(f)
        if isinstance(value, bool):
            words.append(flag if value else flag.replace("--", "--no-", 1))
        else:
            words += [flag, str(value)]
    return " ".join(words)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(_cell(str(c)) for c in row) + " |" for row in rows]


def _front_matter(config: RunConfig) -> list[str]:
    lines = ["---", "library_name: vaekit", "tags:"]
    lines += [f"- {tag}" for tag in ("vaekit", "variational-autoencoder", "pytorch")]
    if config.data.dataset in HUB_DATASETS:
        lines += ["datasets:", f"- {HUB_DATASETS[config.data.dataset]}"]
    return [*lines, "---", ""]


def _architecture(config: RunConfig, image_shape: tuple[int, ...], parameters: int) -> list:
    model = config.model
    about = (MODELS[model.name].__doc__ or "").strip().splitlines()[0]
    sigma = f" (sigma {model.sigma})" if model.likelihood.startswith("gaussian") else ""
    # the family's own fields, whatever the family: each config knows what it has
    own = [f for f in dataclasses.fields(model) if f.name not in ("name", "likelihood", "sigma")]
    rows = [
        ("model", f"{model.name}: {about}"),
        *((f.name.replace("_", " "), str(getattr(model, f.name))) for f in own),
        ("likelihood p(x|z)", model.likelihood + sigma),
        ("image shape (C, H, W)", " x ".join(str(n) for n in image_shape)),
        ("parameters", f"{parameters:,}"),
    ]
    return ["## Architecture", "", *_table(("", ""), rows), ""]


def _training(config: RunConfig, epoch: Any) -> list[str]:
    data, objective, train = config.data, config.objective, config.train
    limit = f"the first {data.limit} images of each split" if data.limit else "the whole split"
    rows = [
        ("data", f"{data.dataset}, training split ({limit}); binarisation {data.binarize}"),
        ("objective", f"{objective.objective} (beta {objective.beta}, k {objective.k})"),
        ("epochs", f"{epoch} of {train.epochs}"),
        ("optimiser", f"Adam, lr {train.lr} ({train.lr_schedule}), batch {train.batch_size}"),
        ("seed, precision", f"{train.seed}, {train.precision}"),
    ]
    return ["## Training data and protocol", "", *_table(("", ""), rows), ""]


def _evaluation(results: list[EvalResult]) -> list[str]:
    lines = ["## Evaluation", ""]
    if not results:
        return [*lines, "Not evaluated: `vaekit evaluate .` in this folder measures it.", ""]
    for result in results:
        lines += [
            f"{result.dataset} {result.split} split, {result.images} images, "
            f"binarisation protocol {result.binarize}, {result.config.get('precision')}, "
            f"torch {result.torch}, on {result.device}:",
            "",
            *_table(("quantity", "value", "note"), eval_rows(result)),
            "",
            f"Measured with `{evaluate_command(result, 'RUN_DIR')}`;",
            f"the same on this folder: `{evaluate_command(result, '.')}`.",
            "",
        ]
    return lines


def render(
    name: str,
    config: RunConfig,
    image_shape: tuple[int, ...],
    parameters: int,
    epoch: Any,
    results: list[EvalResult],
) -> str:
    """The whole card as Markdown."""
    lines = [
        *_front_matter(config),
        f"# {name}",
        "",
        f"A variational autoencoder (model {config.model.name}) on {config.data.dataset}, "
        f"trained and exported with vaekit {__version__}.",
        "",
        *_architecture(config, image_shape, parameters),
        *_training(config, epoch),
        *_evaluation(results),
        "## Use",
        "",
        "```",
        "pip install vaekit",
        "vaekit sample THIS_FOLDER -o samples.png",
        "```",
        "",
        "```python",
        "import vaekit",
        'model = vaekit.load("THIS_FOLDER")',
        "images = vaekit.sample(model, 16)  # (16, C, H, W) in [0, 1]",
        "```",
        "",
        "`config.json` is the run's resolved configuration; `model.safetensors` holds the",
        "weights (a vaekit weights-only checkpoint: tensors under `model/`, the same",
        "configuration in its header). Publish the folder with",
        "`huggingface-cli upload USER/NAME THIS_FOLDER .`",
        "",
    ]
    return "\n".join(lines)
