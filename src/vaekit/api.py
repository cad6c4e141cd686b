"""The Python API: the same functions the CLI calls."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vaekit import checkpoint, fid, pretrained
from vaekit import evaluate as evaluation
from vaekit.config import EvalConfig, RunConfig
from vaekit.data import Split, load_data
from vaekit.errors import ConfigError
from vaekit.models import VAE, build_model
from vaekit.runtime import resolve_device
from vaekit.train import fit


def load(path: str | Path, device: str = "auto") -> VAE:
    """A trained model from a run folder or checkpoint file, in eval mode.

    The run's configuration is attached as `model.run_config`.
    """
    ckpt = checkpoint.load(path)
    model = build_model(ckpt.config.model, ckpt.image_shape)
    try:
        model.load_state_dict(ckpt.model_state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise checkpoint.CheckpointError(
            f"{path}: weights do not fit the model ({first})"
        ) from None
    model.run_config = ckpt.config
    return model.to(resolve_device(device)).eval()


def load_pretrained(name: str, device: str = "auto") -> VAE:
    """A model shipped with vaekit (see `vaekit.pretrained.names()`), offline, in eval mode."""
    return load(pretrained.path(name), device)


def train(config: RunConfig | None = None, run_dir: str | Path = "runs/default", **kwargs) -> Path:
    """Train a model (the seed's defaults when `config` is None); returns the run folder."""
    return fit(config or RunConfig(), run_dir, **kwargs)


def resume(run_dir: str | Path, **overrides) -> Path:
    """Continue a stopped run; `overrides` may extend `epochs` or move `device`."""
    return fit(RunConfig(), run_dir, resume=True, resume_overrides=overrides)


def encode(model: VAE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and log-variance for images x in [0, 1], (B, C, H, W)."""
    with torch.no_grad():
        return model.encode(x.to(next(model.parameters()).device))


def decode(model: VAE, z: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] (the likelihood's means) for latent codes z, (B, D)."""
    with torch.no_grad():
        return model.likelihood.mean(model.decode(z.to(next(model.parameters()).device)))


def _split(model: VAE, split: str, data_dir: str | Path | None, binarize: str) -> Split:
    """A whole split of the model's data under a protocol (the run's training limit is
    not applied: evaluation has its own), on the model's device."""
    data = dataclasses.replace(model.run_config.data, binarize=binarize, limit=None)
    return load_data(data, split, data_dir).to(next(model.parameters()).device)


def _test_split(model: VAE, data_dir: str | Path | None, binarize: str) -> Split:
    return _split(model, "test", data_dir, binarize)


def _loaded(model: VAE | str | Path, device: str) -> tuple[VAE, str | None]:
    if isinstance(model, VAE):
        if model.run_config is None:
            raise ConfigError("the model has no run configuration; load it with vaekit.load")
        return model, None
    return load(model, device), str(checkpoint.resolve_path(model))


def evaluate_model(
    model: VAE | str | Path,
    config: EvalConfig | None = None,
    data_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Score a trained model (or run folder / checkpoint) on its dataset's test split.

    Negative ELBO, importance-weighted log-likelihood with `config.k` samples,
    KL per dimension, active units and FID-MNIST (the classifier is trained and
    cached on first use). Returns the JSON-ready result that `vaekit evaluate` writes.
    """
    config = config or EvalConfig()
    config.validate()
    model, source = _loaded(model, config.device)
    run = model.run_config
    binarize = run.data.binarize if config.binarize == "run" else config.binarize
    test = _test_split(model, data_dir, binarize).subset(config.limit)
    classifier = None
    if config.fid and run.data.dataset not in fid.FID_NAMES:
        log(f"No FID for {run.data.dataset}: its classifier exists for {', '.join(fid.FID_NAMES)}")
    elif config.fid:
        classifier = fid.load_or_train(
            run.data.dataset,
            lambda split: _split(model, split, data_dir, "none"),
            next(model.parameters()).device,
            progress=progress,
            log=log,
        )
    grey = test if binarize != "static" else _test_split(model, data_dir, "none")
    result = evaluation.evaluate(
        model, test, config, binarize, classifier, progress, grey.subset(config.limit).images
    )
    header = {"checkpoint": source, "dataset": run.data.dataset, "split": "test"}
    return header | result | {"torch": torch.__version__}


def plot(
    run_dir: str | Path, data_dir: str | Path | None = None, device: str = "auto"
) -> list[Path]:
    """Draw a run's pictures and report.html into its folder; returns the PNG paths."""
    from vaekit import plots  # matplotlib is slow to import: only callers that draw pay

    run_dir = Path(run_dir)
    if not (run_dir / checkpoint.FILENAME).is_file():
        raise ConfigError(f"{run_dir} is not a vaekit run folder (no {checkpoint.FILENAME})")
    model = load(run_dir, device)
    run = model.run_config
    test = _test_split(model, data_dir, run.data.binarize)
    return plots.plot_run(model, test, run_dir, run.train.seed, run.data.binarize, run.data.dataset)
