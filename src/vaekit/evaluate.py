"""Test-set metrics. The per-epoch test loss uses a fixed generator so it repeats
and leaves the training RNG untouched."""

from __future__ import annotations

import torch

from vaekit.data import to_unit
from vaekit.models import VAE
from vaekit.objectives import negative_elbo
from vaekit.runtime import autocast, inference


def elbo_sums(
    model: VAE,
    images: torch.Tensor,
    batch_size: int = 1000,
    seed: int = 0,
    precision: str = "fp32",
) -> dict[str, torch.Tensor]:
    """Sums over `images` (uint8, N x C x H x W) of loss, recon and kl, as device scalars."""
    device = images.device
    generator = torch.Generator(device=device).manual_seed(seed)
    sums = {k: torch.zeros((), device=device) for k in ("loss", "recon", "kl")}
    with inference(model), autocast(device, precision):
        for start in range(0, images.shape[0], batch_size):
            x = to_unit(images[start : start + batch_size])
            out = model(x, generator)
            for key, value in negative_elbo(x, out.logits, out.mu, out.logvar).items():
                sums[key] += value.sum()
    return sums


def elbo(model: VAE, images: torch.Tensor, **kwargs) -> dict[str, float]:
    """Per-example averages of -ELBO and its two terms over `images`."""
    sums = elbo_sums(model, images, **kwargs)
    return {key: value.item() / images.shape[0] for key, value in sums.items()}
