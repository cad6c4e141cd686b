"""Users' own images: a folder of PNG/JPEG/WebP/BMP files, or a .npy array (memory-mapped).

Each reader returns numpy arrays, images (N, H, W, C) and labels (N,), and never
Python objects per example after loading, so batching stays the same code as for
MNIST. A .npy file is memory-mapped: a dataset larger than RAM is paged in batch
by batch by the OS.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from vaekit import memory
from vaekit.config.registry import DATA_SOURCE
from vaekit.data.arrays import check_shape, check_values, open_array
from vaekit.data.imagefiles import colour_mode, decode, header, image_files
from vaekit.errors import DataError

SPLIT_SEED = 20261125  # fixed: the train/test split of a dataset never depends on a run's seed


def read_folder(
    root: Path, image_size: int | None = None, image_mode: str = "auto", resize: str = "squash"
) -> tuple[np.ndarray, np.ndarray]:
    """Decode every image once; labels come from the first sub-folder level, if any.

    `image_mode` auto keeps grey images grey and makes all colour when any file is
    colour. Without `image_size`, every image must have the first one's size; with it,
    `resize` squashes each image to the square or crops its centred square first. The
    headers are read first, so a mismatch, a bomb or an array too large for memory is
    refused before any pixel is decoded.
    """
    files = image_files(root)
    classes = sorted({p.relative_to(root).parts[0] for p in files if p.parent != root})
    if classes and any(p.parent == root for p in files):
        loose = next(p for p in files if p.parent == root)
        raise DataError(f"{loose}: images both in {root} and in its sub-folders; use one layout")
    headers = [header(p) for p in files]
    mode = colour_mode(image_mode, [m for m, _ in headers])
    first = headers[0][1]
    if not image_size:
        for path, (_, size) in zip(files, headers, strict=True):
            if size != first:
                raise DataError(
                    f"{path} is {size[0]}x{size[1]} but {files[0]} is {first[0]}x{first[1]}; "
                    "pass --image-size to resize them all"
                )
    width, height = (image_size, image_size) if image_size else first
    channels = 3 if mode == "rgb" else 1
    shape = (len(files), height, width, channels)
    flag = f"--image-size {image_size}" if image_size else "their size"
    memory.require(
        int(np.prod(shape, dtype=np.float64)),
        f"{root}: {len(files)} images of {width}x{height}x{channels} ({flag})",
        "use a smaller --image-size or fewer images",
    )
    pixels = np.empty(shape, dtype=np.uint8)
    for index, path in enumerate(files):
        pixels[index] = decode(path, mode, (width, height), crop=resize == "crop")
    labels = [classes.index(p.relative_to(root).parts[0]) if classes else 0 for p in files]
    return pixels, np.asarray(labels, dtype=np.int64)


def read_npy(
    path: Path, image_size: int | None = None, image_mode: str = "auto", resize: str = "squash"
) -> tuple[np.ndarray, np.ndarray]:
    """Memory-map an (N, H, W) or (N, H, W, C) array of uint8, of integers in 0..255 or
    of floats in [0, 1]; every value is checked, the first bad one named."""
    if image_size or image_mode != "auto" or resize != "squash":
        raise DataError(
            f"{path}: --image-size, --image-mode and --resize apply to image folders only"
        )
    array = check_shape(path, open_array(path))
    array = check_values(path, array)
    return array, np.zeros(array.shape[0], dtype=np.int64)


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


Reader = Callable[[Path, int | None, str, str], tuple[np.ndarray, np.ndarray]]
# kind -> (reader, shuffle before splitting)
SOURCES: dict[str, tuple[Reader, bool]] = {"folder": (read_folder, True), "npy": (read_npy, False)}
for _kind, _source in SOURCES.items():  # kinds declared in vaekit.config.registry
    DATA_SOURCE.register(_kind, _source)


def load_user_data(
    spec: str,
    split: str,
    image_size: int | None,
    image_mode: str,
    test_fraction: float,
    resize: str = "squash",
) -> tuple[np.ndarray, np.ndarray]:
    """`folder:PATH` or `npy:PATH` -> (images (N, H, W, C), labels) of one split."""
    kind, _, path = spec.partition(":")
    if kind not in SOURCES or not path:
        raise DataError(f"unknown data source {spec!r}; use folder:PATH or npy:PATH")
    reader, shuffle = SOURCES[kind]
    source = Path(path).expanduser()
    images, labels = reader(source, image_size, image_mode, resize)
    n = images.shape[0]
    rows = split_rows(n, test_fraction, split, shuffle)
    n_test = len(range(n)[split_rows(n, test_fraction, "test", False)])
    if n_test < 1 or n - n_test < 1:
        raise DataError(
            f"{source}: {n} image(s) give {n - n_test} for training and {n_test} for the test "
            f"split (--test-fraction {test_fraction}); each needs at least one"
        )
    return images[rows], labels[rows]
