"""The Python API: the same functions the CLI calls."""

from __future__ import annotations

from pathlib import Path

import torch

from vaekit import checkpoint
from vaekit.config import RunConfig
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
    """Images in [0, 1] (Bernoulli means) for latent codes z, (B, D)."""
    with torch.no_grad():
        return torch.sigmoid(model.decode(z.to(next(model.parameters()).device)))
