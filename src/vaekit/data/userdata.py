"""Users' own images: a folder of PNG/JPEG/WebP/BMP files, or a .npy array (memory-mapped).

Each reader returns numpy arrays, images (N, H, W, C) and labels (N,), and never
Python objects per example after loading, so batching stays the same code as for
MNIST. A .npy file is memory-mapped: a dataset larger than RAM is paged in batch
by batch by the OS.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vaekit.config.registry import DATA_SOURCE
from vaekit.errors import DataError
from vaekit.notices import notice

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
PIL_MODES = {"grey": "L", "rgb": "RGB"}
SPLIT_SEED = 20261125  # fixed: the train/test split of a dataset never depends on a run's seed


def image_files(root: Path) -> list[Path]:
    """Every PNG/JPEG/WebP/BMP under `root`, sorted, so the order (and the split) repeats.
    Other files are named in a notice, never skipped silently."""
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    found = sorted(p for p in root.rglob("*") if p.is_file())
    files = [p for p in found if p.suffix.lower() in IMAGE_SUFFIXES]
    skipped = [p for p in found if p.suffix.lower() not in IMAGE_SUFFIXES]
    if skipped:
        shown = ", ".join(str(p.relative_to(root)) for p in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        notice(f"{root}: skipped {len(skipped)} file(s) that are not images: {shown}{more}")
    if not files:
        raise DataError(f"{root}: the folder holds no PNG, JPEG, WebP or BMP files")
    return files


def read_folder(
    root: Path, image_size: int | None = None, image_mode: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Decode every image once; labels come from the first sub-folder level, if any.

    `image_mode` auto keeps grey images grey and makes all colour when any file is
    colour. Without `image_size`, every image must have the first one's size.
    """
    files = image_files(root)
    classes = sorted({p.relative_to(root).parts[0] for p in files if p.parent != root})
    if classes and any(p.parent == root for p in files):
        loose = next(p for p in files if p.parent == root)
        raise DataError(f"{loose}: images both in {root} and in its sub-folders; use one layout")
    opened = [_open(p) for p in files]
    if image_mode == "auto":
        colour = any(img.mode not in ("L", "1", "I;16", "I", "LA") for img in opened)
        image_mode = "rgb" if colour else "grey"
    mode = PIL_MODES[image_mode]
    first = opened[0].size
    pixels = []
    for path, img in zip(files, opened, strict=True):
        img = img.convert(mode)
        if image_size:
            img = img.resize((image_size, image_size), Image.BILINEAR)
        elif img.size != first:
            raise DataError(
                f"{path} is {img.size[0]}x{img.size[1]} but {files[0]} is {first[0]}x{first[1]}; "
                "pass --image-size to resize them all"
            )
        array = np.asarray(img, dtype=np.uint8)
        pixels.append(array[..., None] if array.ndim == 2 else array)
    labels = [classes.index(p.relative_to(root).parts[0]) if classes else 0 for p in files]
    return np.stack(pixels), np.asarray(labels, dtype=np.int64)


def _open(path: Path) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the image ({exc})") from None
    return img


def read_npy(
    path: Path, image_size: int | None = None, image_mode: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Memory-map an (N, H, W) or (N, H, W, C) array of uint8, or of floats in [0, 1]."""
    if image_size or image_mode != "auto":
        raise DataError(f"{path}: --image-size and --image-mode apply to image folders only")
    try:
        # Copy-on-write mapping: nothing is read until a batch touches it, and torch
        # gets a writable buffer without a copy.
        array = np.load(path, mmap_mode="c", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3) or array.shape[0] == 0:
        raise DataError(
            f"{path}: expected shape (N, H, W) or (N, H, W, C) with C 1 or 3, got {array.shape}"
        )
    if array.dtype == np.uint8:
        return array, np.zeros(array.shape[0], dtype=np.int64)
    if array.dtype not in (np.float32, np.float64, np.float16):
        raise DataError(f"{path}: dtype {array.dtype}; expected uint8 or float in [0, 1]")
    low, high = _range(array)
    if low < 0 or high > 1 or not (math.isfinite(low) and math.isfinite(high)):
        raise DataError(f"{path}: float values must lie in [0, 1]; found [{low}, {high}]")
    return array.astype(np.float32, copy=False), np.zeros(array.shape[0], dtype=np.int64)


def _range(array: np.ndarray, rows: int = 4096) -> tuple[float, float]:
    """Min and max, a block of rows at a time, so a memory-mapped array is never whole in RAM."""
    low, high = math.inf, -math.inf
    for start in range(0, array.shape[0], rows):
        block = array[start : start + rows]
        low, high = min(low, float(block.min())), max(high, float(block.max()))
    return low, high


def split_rows(n: int, test_fraction: float, split: str, shuffle: bool) -> slice | np.ndarray:
    """Rows of `split` ("train" or "test"): a fixed hold-out of `test_fraction` of n.

    Folders are shuffled with a fixed seed first (they are sorted by class);
    arrays keep their order (the last rows are the test split) so that a
    memory-mapped array is sliced, never copied.
    """
    n_test = max(1, round(n * test_fraction)) if n > 1 else 0
    if shuffle:
        order = np.random.default_rng(SPLIT_SEED).permutation(n)
        return np.sort(order[:n_test] if split == "test" else order[n_test:])
    return slice(n - n_test, n) if split == "test" else slice(0, n - n_test)


Reader = Callable[[Path, int | None, str], tuple[np.ndarray, np.ndarray]]
# kind -> (reader, shuffle before splitting)
SOURCES: dict[str, tuple[Reader, bool]] = {"folder": (read_folder, True), "npy": (read_npy, False)}
for _kind, _source in SOURCES.items():  # kinds declared in vaekit.config.registry
    DATA_SOURCE.register(_kind, _source)


def load_user_data(
    spec: str, split: str, image_size: int | None, image_mode: str, test_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """`folder:PATH` or `npy:PATH` -> (images (N, H, W, C), labels) of one split."""
    kind, _, path = spec.partition(":")
    if kind not in SOURCES or not path:
        raise DataError(f"unknown data source {spec!r}; use folder:PATH or npy:PATH")
    reader, shuffle = SOURCES[kind]
    images, labels = reader(Path(path).expanduser(), image_size, image_mode)
    rows = split_rows(images.shape[0], test_fraction, split, shuffle)
    return images[rows], labels[rows]
