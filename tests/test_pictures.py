"""Grids put each image where it belongs; PNGs round-trip; pictures are not blank."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from vaekit.config import MLPConfig
from vaekit.models import build_model
from vaekit.pictures import grid, reconstruction_grid, sample, save_png


def test_grid_places_images_row_major_with_padding():
    images = torch.stack([torch.full((1, 3, 4), v / 10) for v in range(5)])  # 5 images, 3x4
    pixels = grid(images, nrow=2, padding=1)
    assert pixels.shape == (3 * (3 + 1) + 1, 2 * (4 + 1) + 1)
    for i in range(5):
        top, left = 1 + (i // 2) * 4, 1 + (i % 2) * 5
        assert (pixels[top : top + 3, left : left + 4] == round(i / 10 * 255)).all()
    assert pixels[0].max() == 0  # padding row


def test_colour_grid_and_png_round_trip(tmp_path):
    images = torch.rand(4, 3, 8, 8)
    pixels = grid(images, nrow=4)
    assert pixels.shape == (12, 42, 3)
    path = save_png(pixels, tmp_path / "c.png", scale=3)
    loaded = np.asarray(Image.open(path))
    assert loaded.shape == (36, 126, 3)
    assert np.array_equal(loaded[::3, ::3], pixels)


def test_samples_repeat_with_the_seed_and_vary_across_images():
    torch.manual_seed(0)
    model = build_model(MLPConfig(), (1, 28, 28))
    a, b = sample(model, 8, seed=5), sample(model, 8, seed=5)
    assert torch.equal(a, b)
    assert a.shape == (8, 1, 28, 28) and a.min() >= 0 and a.max() <= 1
    assert (a[0] - a[1]).abs().max() > 0


def test_reconstruction_grid_puts_originals_above_reconstructions():
    torch.manual_seed(0)
    model = build_model(MLPConfig(), (1, 28, 28))
    x = torch.rand(16, 1, 28, 28)
    pixels = grid(x, nrow=8)
    both = reconstruction_grid(model, x, per_row=8)
    assert both.shape == (4 * 30 + 2, 8 * 30 + 2)
    assert np.array_equal(both[2:30], pixels[2:30])  # first row: the originals
    assert np.array_equal(both[62:90], pixels[32:60])  # third row: the next originals
