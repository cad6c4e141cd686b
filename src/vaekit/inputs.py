"""What the Python API accepts as images and latent codes, checked before any layer runs.

A wrong shape would otherwise surface deep inside a layer as "mat1 and mat2 shapes
cannot be multiplied"; here it is an `InputError` naming the expected and found
shapes. Tensors, numpy arrays and nested lists are accepted; uint8 pixels are
scaled to [0, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vaekit.errors import InputError

ArrayLike = torch.Tensor | np.ndarray | list


def as_tensor(value: Any, what: str) -> torch.Tensor:
    """`value` as a tensor (no copy where possible), or InputError naming `what`."""
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError) as exc:
        kind = type(value).__name__
        raise InputError(f"{what} must be a tensor or an array; got {kind} ({exc})") from None


def images(value: Any, image_shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Images for a model of `image_shape` (C, H, W) as float (B, C, H, W) in [0, 1].

    One image (C, H, W) gets a batch dimension; grey images may come as (B, H, W);
    uint8 pixels are divided by 255; floats must lie in [0, 1].
    """
    x = as_tensor(value, "images")
    channels, height, width = image_shape
    if x.ndim == 3 and tuple(x.shape) == tuple(image_shape):
        x = x[None]
    elif x.ndim == 3 and channels == 1 and tuple(x.shape[1:]) == (height, width):
        x = x[:, None]
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(image_shape):
        expected = f"(B, {channels}, {height}, {width})"
        raise InputError(f"images must have shape {expected} for this model; got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = x.float() / 255
    elif not x.is_floating_point():
        raise InputError(f"images must be uint8 or float in [0, 1]; got {x.dtype}")
    x = x.float()
    if x.numel() and not (torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
        raise InputError(
            f"float images must be finite and in [0, 1]; got values in "
            f"[{x.min().item():.3g}, {x.max().item():.3g}]"
        )
    return x.to(device)


def codes(value: Any, latent_dim: int, device: torch.device) -> torch.Tensor:
    """Latent codes as float (B, latent_dim); one code (latent_dim,) gets a batch dimension."""
    z = as_tensor(value, "latent codes")
    if z.ndim == 1:
        z = z[None]
    if z.ndim != 2 or z.shape[1] != latent_dim:
        raise InputError(
            f"latent codes must have shape (B, {latent_dim}) for this model; got {tuple(z.shape)}"
        )
    if not z.is_floating_point() and z.dtype not in (torch.int32, torch.int64):
        raise InputError(f"latent codes must be numbers; got {z.dtype}")
    z = z.float()
    if not torch.isfinite(z).all():
        raise InputError("latent codes must be finite")
    return z.to(device)


def vectors(value: Any, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """A table model's encoded vectors, (B, D), (D,) or (B, 1, 1, D), as float (B, 1, 1, D):
    finite numbers, in the standardised units the model was trained on."""
    x = as_tensor(value, "vectors")
    width = shape[-1]
    if x.ndim == 1:
        x = x[None]
    if x.ndim == 2:
        x = x[:, None, None]
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(shape):
        raise InputError(
            f"vectors must have shape (B, {width}) for this model; got {tuple(x.shape)}"
        )
    if not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64)):
        raise InputError(f"vectors must be numbers; got {x.dtype}")
    x = x.float()
    if not torch.isfinite(x).all():
        raise InputError("vectors must be finite")
    return x.to(device)
