"""Image grids written as PNG with numpy and Pillow (no torchvision)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vaekit.data import to_unit
from vaekit.errors import ConfigError
from vaekit.models import VAE
from vaekit.runtime import inference


def grid(
    images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 0.0
) -> np.ndarray:
    """Tile (N, C, H, W) images in [0, 1] into one uint8 array, like torchvision's make_grid."""
    images = images.detach().float().clamp(0, 1).cpu()
    n, c, h, w = images.shape
    ncol = min(nrow, n)
    nrows = -(-n // ncol)
    canvas = np.full(
        (nrows * (h + padding) + padding, ncol * (w + padding) + padding, c),
        pad_value,
        dtype=np.float32,
    )
    for i, image in enumerate(images.numpy()):
        top, left = padding + (i // ncol) * (h + padding), padding + (i % ncol) * (w + padding)
        canvas[top : top + h, left : left + w] = image.transpose(1, 2, 0)
    pixels = np.round(canvas * 255).astype(np.uint8)
    return pixels[..., 0] if c == 1 else pixels


def save_png(pixels: np.ndarray, path: str | Path, scale: int = 1) -> Path:
    """Write a uint8 array as PNG, optionally enlarged `scale` times (nearest neighbour)."""
    path = Path(path)
    image = Image.fromarray(pixels)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def sample(model: VAE, n: int = 64, seed: int = 0, label: int | None = None) -> torch.Tensor:
    """n images decoded from z ~ p(z): the likelihood's means in [0, 1], (n, C, H, W).

    `label`: a conditional model's class for every image (else drawn uniformly)."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    y = None if label is None else torch.full((n,), label, device=device)
    if label is not None and not model.classes:
        raise ConfigError("--label needs a conditional model (--condition label)")
    if label is not None and not 0 <= label < model.classes:
        raise ConfigError(f"--label must be in 0 .. {model.classes - 1}; got {label}")
    with inference(model):
        return model.likelihood.mean(model.generate(n, generator, **model.condition(y)).float())


def class_rows(model: VAE, per_class: int = 8, seed: int = 0) -> torch.Tensor:
    """A conditional model's samples class by class, `per_class` of each (label 0's
    first): tiled `per_class` to a row, one row per class. (classes * per_class, C, H, W)."""
    if not model.classes:
        raise ConfigError("one row per class needs a conditional model (--condition label)")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    y = torch.arange(model.classes, device=device).repeat_interleave(per_class)
    with inference(model):
        return model.likelihood.mean(model.generate(len(y), generator, y=y).float())


def reconstruct(model: VAE, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Decode each image's posterior mean: the model's best reconstruction of x in [0, 1]
    (a conditional model's given each image's label)."""
    labels = None if labels is None else labels.to(x.device)
    with inference(model):
        return model.likelihood.mean(model.reconstruct(x, **model.condition(labels)).float())


def reconstruction_grid(
    model: VAE, x: torch.Tensor, per_row: int = 8, labels: torch.Tensor | None = None
) -> np.ndarray:
    """Rows of originals, each directly above a row of their reconstructions."""
    x = x.float()
    recon = reconstruct(model, x, labels).to(x.device)
    rows = []
    for start in range(0, x.shape[0], per_row):
        rows += [x[start : start + per_row], recon[start : start + per_row]]
    return grid(torch.cat(rows), nrow=per_row)


def traversal(
    model: VAE, z: torch.Tensor, steps: int = 10, low: float = 0.05, high: float = 0.95
) -> np.ndarray:
    """One row per latent dimension: the code `z` (D,) with that dimension swept over the
    N(0, 1) prior's quantiles from `low` to `high`, decoded to the likelihood's means; what
    each dimension controls (Higgins et al. 2017, fig. 7) at a glance."""
    quantiles = torch.linspace(low, high, steps, dtype=torch.float64)
    values = torch.distributions.Normal(0.0, 1.0).icdf(quantiles).to(z.device, z.dtype)
    dims = z.shape[-1]
    codes = z.reshape(1, dims).repeat(dims * steps, 1)
    for d in range(dims):
        codes[d * steps : (d + 1) * steps, d] = values
    with inference(model):
        images = model.likelihood.mean(model.decode(codes).float())
    return grid(images, nrow=steps)


def write_traversal(model: VAE, image: torch.Tensor, path: str | Path) -> Path:
    """The traversal from one uint8 image's posterior mean (one-group models), as PNG."""
    with inference(model):
        mu = model.posterior_point(to_unit(image[:1]))  # with a flow: z_T, as decoded
    return save_png(traversal(model, mu[0]), path, scale=2)
