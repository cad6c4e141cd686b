"""Procedural sprites in the manner of dSprites (Matthey et al. 2017), drawn by vaekit.

Five factors of variation: shape (square, ellipse, heart), scale (6 values in
[0.5, 1]), orientation (40 angles in [0, 2 pi)), x and y position (32 each), one
64 x 64 binary image per combination: 3 * 6 * 40 * 32 * 32 = 737,280 images. Every
image is drawn by testing pixel centres against the rotated shape, so the set is a
pure function of this module: built once into the cache (bits packed eight to a
byte), its sha256 checked on every load and against the one recorded here on every
build. The images are stored in one fixed random order (seed 0): the first
`TEST_SIZE` are the test split, the rest train, so `--limit N` takes a random,
factor-balanced subset of each.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vaekit.config.registry import DATASET
from vaekit.data.sources import cache_dir
from vaekit.errors import DataError
from vaekit.files import write_atomic

SIZE = 64
PATCH = 16  # side of the window a sprite is drawn in (its circumradius is at most 7.5 px)
RADIUS = 7.5  # circumradius in pixels at scale 1
FACTOR_NAMES = ("shape", "scale", "orientation", "x", "y")
SHAPES = ("square", "ellipse", "heart")
TEST_SIZE = 10_000
ORDER_SEED = 0
# sha256 of the packed images and of the factor array, in stored order, of the full grid:
# a build that differs (another numpy, a changed drawing) is refused.
CHECKSUMS = {
    "images": "2788f1103484cfaab0279f6ddf79e68a4486a1a6f77e4e82fdb52666ca9f324f",
    "factors": "06ab312f860a6a94d6656abe855a9ac05052e185491f0481d679cd0f7a811e14",
}


@dataclass(frozen=True)
class Grid:
    """How many values each factor takes; the full grid is dSprites'."""

    shapes: int = 3
    scales: int = 6
    orientations: int = 40
    positions: int = 32

    @property
    def sizes(self) -> tuple[int, int, int, int, int]:
        return (self.shapes, self.scales, self.orientations, self.positions, self.positions)

    def __len__(self) -> int:
        return math.prod(self.sizes)


FULL = Grid()


def scale_values(grid: Grid = FULL) -> np.ndarray:
    return np.linspace(0.5, 1.0, grid.scales)


def orientation_values(grid: Grid = FULL) -> np.ndarray:
    return np.arange(grid.orientations) * (2 * np.pi / grid.orientations)


def position_values(grid: Grid = FULL) -> np.ndarray:
    """Sprite centres in pixels (pixel i spans [i, i+1)): 8 to 54.5 in steps of 1.5 for 32
    positions, so a centre sits on a pixel corner or halfway between two."""
    step = 1.5 * (Grid.positions - 1) / max(grid.positions - 1, 1)  # same span on any grid
    return 8.0 + step * np.arange(grid.positions)


def inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether points (u, v), in units of the circumradius and in the sprite's own frame
    (v up), lie in the shape: a square with corners on the unit circle, an ellipse of
    semi-axes 1 and 1/2, and the heart (x^2 + y^2 - 1)^3 <= x^2 y^3 shrunk to fit."""
    if SHAPES[shape] == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 1 / math.sqrt(2)
    if SHAPES[shape] == "ellipse":
        return u**2 + (2 * v) ** 2 <= 1
    x, y = 1.3 * u, 1.3 * v + 0.1
    return (x**2 + y**2 - 1) ** 3 <= x**2 * y**3


def draw_patches(shape: int, scale: float, angles: np.ndarray) -> np.ndarray:
    """The sprite at each angle in a PATCH x PATCH window, for both sub-pixel phases of the
    centre in x and in y: bool (angles, phase_y, phase_x, PATCH, PATCH). Phase 0 puts the
    centre on the window's middle pixel corner, phase 1 half a pixel further."""
    offsets = np.arange(PATCH) + 0.5 - PATCH / 2  # pixel centres relative to the window middle
    phases = np.array([0.0, 0.5])
    dy = offsets[None, :] - phases[:, None]  # (phase, PATCH)
    dx = dy
    cos = np.cos(angles)[:, None, None, None, None]
    sin = np.sin(angles)[:, None, None, None, None]
    px = dx[None, None, :, None, :]
    py = -dy[None, :, None, :, None]  # image rows grow downwards, the sprite's v upwards
    radius = RADIUS * scale
    u = (cos * px + sin * py) / radius
    v = (-sin * px + cos * py) / radius
    return inside(shape, u, v)


def factor_grid(grid: Grid = FULL) -> np.ndarray:
    """Every combination of factor indices in canonical (C) order: uint8 (N, 5)."""
    axes = np.meshgrid(*(np.arange(n) for n in grid.sizes), indexing="ij")
    return np.stack([a.ravel() for a in axes], axis=1).astype(np.uint8)


def draw(grid: Grid = FULL) -> np.ndarray:
    """Every image of the grid in canonical order, bits packed along rows: (N, 64, 8) uint8."""
    n_pos = grid.positions
    centres = position_values(grid)
    corner = np.floor(centres).astype(int) - PATCH // 2  # window's top-left pixel
    phase = (centres - np.floor(centres) > 0.25).astype(int)
    per_scale = grid.orientations * n_pos * n_pos
    out = np.empty((len(grid), SIZE, SIZE // 8), np.uint8)
    angles = orientation_values(grid)
    for s in range(grid.shapes):
        for k, scale in enumerate(scale_values(grid)):
            patches = draw_patches(s, float(scale), angles)
            canvas = np.zeros((grid.orientations, n_pos, n_pos, SIZE, SIZE), bool)
            for i in range(n_pos):  # y index
                rows = slice(corner[i], corner[i] + PATCH)
                for j in range(n_pos):  # x index
                    cols = slice(corner[j], corner[j] + PATCH)
                    canvas[:, j, i, rows, cols] = patches[:, phase[i], phase[j]]
            start = (s * grid.scales + k) * per_scale
            out[start : start + per_scale] = np.packbits(canvas, axis=-1).reshape(-1, SIZE, 8)
    return out


def stored_order(n: int) -> np.ndarray:
    """The fixed random order the images are stored in (test split first)."""
    return np.random.default_rng(ORDER_SEED).permutation(n)


def build(grid: Grid = FULL) -> tuple[np.ndarray, np.ndarray]:
    """(packed images (N, 64, 8), factor indices (N, 5)), both in stored order."""
    order = stored_order(len(grid))
    return draw(grid)[order], factor_grid(grid)[order]


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def folder(data_dir: str | Path | None) -> Path:
    """Where the built set lives: like MNIST's files, under --data-dir, else
    $VAEKIT_DATA_DIR, else vaekit's cache, in a `sprites/` folder."""
    root = data_dir or os.environ.get("VAEKIT_DATA_DIR") or cache_dir()
    return Path(root) / "sprites"


def _write(where: Path, images: np.ndarray, factors: np.ndarray) -> None:
    where.mkdir(parents=True, exist_ok=True)
    for name, array in (("images", images), ("factors", factors)):
        path = where / f"{name}.npy"
        with open(path.with_suffix(".tmp"), "wb") as handle:
            np.save(handle, array)
        os.replace(path.with_suffix(".tmp"), path)
    sums = {"images": sha256(images), "factors": sha256(factors)}
    write_atomic(where / "checksums.json", json.dumps(sums, indent=1).encode())


def ensure_built(data_dir: str | Path | None = None) -> Path:
    """The folder holding the full set, drawn there first if missing; a drawing whose
    checksums differ from the recorded ones is an error (nothing is kept)."""
    where = folder(data_dir)
    if (where / "checksums.json").is_file():
        return where
    images, factors = build(FULL)
    got = {"images": sha256(images), "factors": sha256(factors)}
    for name, expected in CHECKSUMS.items():
        if got[name] != expected:
            raise DataError(
                f"the sprites drawn here differ from vaekit's recorded ones ({name} sha256 "
                f"{got[name][:12]}..., expected {expected[:12]}...); this numpy draws them "
                "differently, so results would not compare"
            )
    _write(where, images, factors)
    return where


def load(
    split: str, data_dir: str | Path | None = None, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images 0/255 (n, 64, 64), factor indices (n, 5)) of one split, verified; only
    the first `limit` examples are unpacked."""
    where = ensure_built(data_dir)
    packed = np.load(where / "images.npy", mmap_mode="r")
    factors = np.load(where / "factors.npy")
    recorded = json.loads((where / "checksums.json").read_text())
    if sha256(factors) != recorded["factors"] or sha256(packed) != recorded["images"]:
        raise DataError(f"{where} is damaged (checksum mismatch); delete the folder to redraw it")
    if split == "test":
        rows = slice(0, TEST_SIZE)
    elif split == "train":
        rows = slice(TEST_SIZE, None)
    else:
        raise DataError(f"sprites has no split {split!r}; it has train, test")
    packed, factors = packed[rows], factors[rows]
    if limit is not None:
        packed, factors = packed[:limit], factors[:limit]
    images = np.unpackbits(np.asarray(packed), axis=-1) * np.uint8(255)
    return images, factors.astype(np.int64)


@dataclass(frozen=True)
class SpritesSpec:
    """What the dataset registry holds for sprites: drawn, not fetched."""

    name: str = "sprites"
    class_names: tuple[str, ...] = SHAPES
    factor_names: tuple[str, ...] = FACTOR_NAMES
    factor_sizes: tuple[int, ...] = FULL.sizes

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


SPRITES = DATASET.register("sprites", SpritesSpec())
