"""Trained weights shipped inside the package: `vaekit sample --pretrained mnist-seed`.

Each file is a vaekit checkpoint holding weights only (no optimiser state), with
the run's config and, under progress["figures"], what `vaekit evaluate` measured
for it. `export` writes such a file from any run folder, for sharing weights.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from vaekit.errors import ConfigError
from vaekit.runfolder import RunFolder

SUFFIX = ".safetensors"


def names() -> list[str]:
    files = resources.files(__name__).iterdir()
    return sorted(f.name.removesuffix(SUFFIX) for f in files if f.name.endswith(SUFFIX))


def path(name: str) -> Path:
    """The file of the pretrained model `name`."""
    if name not in names():
        known = ", ".join(names()) or "none"
        raise ConfigError(f"no pretrained model {name!r}; shipped: {known}")
    return Path(str(resources.files(__name__) / f"{name}{SUFFIX}"))


def figures(name: str) -> dict[str, Any]:
    """The evaluation figures stored with a pretrained model."""
    from vaekit import checkpoint  # torch: not for the names the command line's help lists

    return checkpoint.load(path(name)).progress.get("figures", {})


def export(
    run_dir: str | Path,
    out: str | Path,
    eval_files: tuple[str, ...] = (),
    half: bool = False,
) -> Path:
    """A weights-only copy of a run's checkpoint, with its evaluations' headline figures.

    The config's data_dir is cleared: it names a folder on the machine that trained it.
    `half` stores the weights as float16 (half the size; they load back into float32),
    so figures meant to travel with them should come from evaluating the exported file.
    """
    from vaekit import checkpoint

    run_dir = Path(run_dir)
    ckpt = checkpoint.load(run_dir)
    if half:
        ckpt.model_state = {key: value.half() for key, value in ckpt.model_state.items()}
    ckpt.config.data.data_dir = None
    found: dict[str, Any] = {}
    for name in eval_files:
        result = RunFolder(run_dir).read_eval(Path(run_dir, name))
        if result is None:
            raise ConfigError(f"no evaluation {Path(run_dir, name)}")
        found[result.binarize] = {
            "neg_elbo_nats": result.neg_elbo.nats,
            "nll_nats": result.iwae.nll_nats,
            "nll_stderr_nats": result.iwae.stderr_nats,
            "k": result.iwae.k,
            "active_units": result.latent.active_units,
        }
    progress = {"epoch": ckpt.progress.get("epoch"), "figures": found}
    weights = checkpoint.Checkpoint(
        ckpt.config, ckpt.image_shape, ckpt.model_state, None, {}, progress, ckpt.data_transform
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return checkpoint.save(weights, out)
