"""A user's .npy array, checked before training: shape, dtype and every value.

NaN or infinity in one pixel poisons every step that touches it, values out of
range train a model on a different scale than the one it is scored on, and a
Python-object array cannot be read without running code. Each is refused with
the file, the row and the pixel, and the scan goes a block of rows at a time so
a memory-mapped array is never wholly in RAM.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from vaekit import memory
from vaekit.errors import DataError

BLOCK_ROWS = 4096
# np.load parses a .npy header with Python's own parser (ast.literal_eval, tokenize),
# so a damaged header can raise almost any exception (TokenError, SyntaxError,
# MemoryError, RecursionError, ...): all of them mean "not a readable array".
LOAD_ERRORS = (Exception,)


def open_array(path: Path) -> np.ndarray:
    """The array memory-mapped copy-on-write (nothing is read until a batch touches it,
    and torch gets a writable buffer without a copy); never unpickles."""
    try:  # quiet: a damaged header's overflow warnings would print before our one line
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = np.load(path, mmap_mode="c", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except PermissionError:
        raise DataError(f"{path}: cannot read the file (permission denied)") from None
    except LOAD_ERRORS as exc:
        if "pickled (object) data" in str(exc):  # no .npy magic: np.load takes it for a pickle
            raise DataError(
                f"{path}: not a readable .npy array (no .npy header; vaekit never unpickles)"
            ) from None
        if "Python objects" in str(exc) or "allow_pickle" in str(exc):
            raise DataError(
                f"{path}: holds Python objects (dtype object), which vaekit never loads "
                "(it could run code); save numbers: uint8, or floats in [0, 1]"
            ) from None
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: not a readable .npy array ({reason})") from None
    if not isinstance(array, np.ndarray):  # np.load gives an NpzFile for .npz archives
        raise DataError(f"{path}: an .npz archive, not a .npy array")
    return array


def check_shape(path: Path, array: np.ndarray) -> np.ndarray:
    """(N, H, W, C) with C 1 or 3, at least one row and no empty image dimension."""
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        shape = array.shape if array.ndim != 4 else tuple(array.shape)
        raise DataError(
            f"{path}: expected shape (N, H, W) or (N, H, W, C) with C 1 or 3, got {shape}"
        )
    if array.shape[0] == 0:
        raise DataError(f"{path}: holds no rows (shape {array.shape})")
    if 0 in array.shape[1:3]:
        raise DataError(f"{path}: images of {array.shape[1]}x{array.shape[2]} pixels are empty")
    return array


def first_bad(array: np.ndarray, low: float, high: float) -> tuple[tuple[int, ...], float] | None:
    """The index and value of the first element that is NaN, infinite or outside
    [low, high], scanning a block of rows at a time; None when all are fine."""
    for start in range(0, array.shape[0], BLOCK_ROWS):
        block = np.asarray(array[start : start + BLOCK_ROWS])
        with np.errstate(invalid="ignore"):
            bad = (block < low) | (block > high)
            if block.dtype.kind == "f":
                bad |= ~np.isfinite(block)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            return (start + where[0], *where[1:]), block[where].item()
    return None


def _bad_value_error(path: Path, found: tuple[tuple[int, ...], float], expected: str) -> DataError:
    (row, y, x, c), value = found
    return DataError(
        f"{path}: row {row}, pixel (y={y}, x={x}, channel {c}) is {value!r}; {expected}"
    )


def check_values(path: Path, array: np.ndarray) -> np.ndarray:
    """uint8 as it is; other integers in 0..255 and finite floats in [0, 1] converted
    (uint8, float32); any other dtype, or a value out of range, is an error naming it."""
    if array.dtype == np.uint8:
        return array
    kind = array.dtype.kind
    if kind in "iu" and array.dtype.fields is None:
        found = first_bad(array, 0, 255)
        if found:
            raise _bad_value_error(path, found, f"{array.dtype} pixels must lie in 0..255")
        return _converted(path, array, np.uint8)
    if kind == "f" and array.dtype.fields is None:
        found = first_bad(array, 0.0, 1.0)
        if found:
            raise _bad_value_error(path, found, "float pixels must be finite and lie in [0, 1]")
        return array if array.dtype == np.float32 else _converted(path, array, np.float32)
    raise DataError(
        f"{path}: dtype {array.dtype} ({_kind_name(array.dtype)}); expected uint8, "
        "integers in 0..255 or floats in [0, 1]"
    )


def _kind_name(dtype: np.dtype) -> str:
    if dtype.fields is not None:
        return "a structured record"
    names = {"c": "complex numbers", "b": "booleans", "U": "text", "S": "bytes"}
    return names.get(dtype.kind, f"kind {dtype.kind!r}")


def _converted(path: Path, array: np.ndarray, dtype: type) -> np.ndarray:
    """A copy in RAM as `dtype`, after checking that it fits, block by block."""
    needed = int(np.prod(array.shape, dtype=np.float64) * np.dtype(dtype).itemsize)
    memory.require(
        needed,
        f"{path}: converting {array.dtype} to {np.dtype(dtype).name} in memory",
        f"save the array as {np.dtype(dtype).name} so that it is memory-mapped instead",
    )
    out = np.empty(array.shape, dtype=dtype)
    for start in range(0, array.shape[0], BLOCK_ROWS):
        out[start : start + BLOCK_ROWS] = array[start : start + BLOCK_ROWS]
    return out
