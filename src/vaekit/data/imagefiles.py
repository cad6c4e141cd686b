"""A folder of image files, read defensively: every failure is one DataError naming the file.

A user's folder can hold anything: truncated or corrupt files, files whose
extension lies, decompression bombs (a small file that decodes to gigapixels),
symbolic links that loop or lead nowhere, files the user cannot read, 16-bit or
palette images among 8-bit ones. Each is refused with the file's name, or
converted as the user would expect, never a traceback and never a silent skip.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vaekit.errors import DataError
from vaekit.notices import notice

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
PIL_MODES = {"grey": "L", "rgb": "RGB"}
GREY_MODES = {"L", "1", "LA", "I", "F"}  # and every "I;16..." variant
# What Pillow raises on files it cannot parse: besides OSError, its decoders raise
# SyntaxError ("broken PNG file"), struct.error, EOFError, ValueError, IndexError, ...
DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    EOFError,
    ZeroDivisionError,
    OverflowError,
    MemoryError,
    struct.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,  # made an error below: refused, not decoded
)


def walk(root: Path) -> list[Path]:
    """Every file under `root`, sorted; symbolic links are followed, except one that
    loops, leads nowhere or cannot be read, which is an error naming it."""
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    found: list[Path] = []
    stack = [(root, frozenset({_identity(root)}))]
    while stack:
        folder, ancestors = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise DataError(f"{folder}: cannot list the folder ({exc.strerror})") from None
        for entry in entries:
            path = Path(entry.path)
            kind = _kind(path)
            if kind == "dir":
                identity = _identity(path)
                if identity in ancestors:
                    raise DataError(
                        f"{path}: symbolic link loop (leads back to {Path(os.path.realpath(path))})"
                    )
                stack.append((path, ancestors | {identity}))
            elif kind == "file":
                found.append(path)
    return sorted(found)


def _identity(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


def _kind(path: Path) -> str:
    """'dir', 'file' or 'other' (sockets, fifos); a bad link is a DataError naming it."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if path.is_symlink():
            why = {
                errno.ELOOP: "loops",
                errno.ENOENT: f"leads to {os.readlink(path)}, which does not exist",
            }.get(exc.errno, f"cannot be followed ({exc.strerror})")
            raise DataError(f"{path}: a symbolic link that {why}") from None
        raise DataError(f"{path}: cannot read it ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "other"


def image_files(root: Path) -> list[Path]:
    """Every PNG/JPEG/WebP/BMP under `root`, sorted, so the order (and the split) repeats.
    Other files are named in a notice, never skipped silently."""
    found = walk(root)
    files = [p for p in found if p.suffix.lower() in IMAGE_SUFFIXES]
    skipped = [p for p in found if p.suffix.lower() not in IMAGE_SUFFIXES]
    if skipped:
        shown = ", ".join(str(p.relative_to(root)) for p in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        notice(f"{root}: skipped {len(skipped)} file(s) that are not images: {shown}{more}")
    if not files:
        raise DataError(f"{root}: the folder holds no PNG, JPEG, WebP or BMP files")
    return files


def _failure(path: Path, exc: BaseException) -> DataError:
    """The one line for a file Pillow could not open or decode."""
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return DataError(f"{path}: refused as a possible decompression bomb ({exc})")
    if isinstance(exc, UnidentifiedImageError):
        return DataError(
            f"{path}: cannot read the image (not a PNG, JPEG, WebP or BMP file, "
            "though its name says so)"
        )
    if isinstance(exc, PermissionError):
        return DataError(f"{path}: cannot read the image (permission denied)")
    if isinstance(exc, MemoryError):
        return DataError(f"{path}: cannot read the image (it does not fit in memory)")
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return DataError(f"{path}: cannot read the image ({reason})")


def header(path: Path) -> tuple[str, tuple[int, int]]:
    """(mode, (width, height)) from the file's header, without decoding the pixels;
    a decompression bomb is refused here, before any pixel is allocated."""
    try:
        with warnings.catch_warnings():  # Pillow's other warnings would break our one line
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return img.mode, img.size
    except DECODE_ERRORS as exc:
        raise _failure(path, exc) from None


def colour_mode(requested: str, modes: list[str]) -> str:
    """'grey' or 'rgb': auto keeps grey images grey and makes all colour when one is."""
    if requested != "auto":
        return requested
    colour = any(m not in GREY_MODES and not m.startswith("I;16") for m in modes)
    return "rgb" if colour else "grey"


def decode(path: Path, mode: str, size: tuple[int, int] | None, crop: bool = False) -> np.ndarray:
    """The file's pixels as uint8 (H, W, C) in `mode` ('grey' or 'rgb'), resized to
    `size` (width, height) when given; with `crop`, the centred box of `size`'s aspect
    is cut out first, so a photo is scaled, never stretched."""
    try:
        with warnings.catch_warnings():  # Pillow's other warnings would break our one line
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                img = _eight_bit(img).convert(PIL_MODES[mode])
                if size and img.size != size:
                    if crop:  # cut first: resize's box would blend in pixels beyond it
                        img = img.crop(centre_box(img.size, size))
                    img = img.resize(size, Image.BILINEAR)
                array = np.asarray(img, dtype=np.uint8)
    except DECODE_ERRORS as exc:
        raise _failure(path, exc) from None
    return array[..., None] if array.ndim == 2 else array


def centre_box(have: tuple[int, int], want: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest centred (left, top, right, bottom) box of `have` with `want`'s aspect."""
    (width, height), (to_w, to_h) = have, want
    crop_w, crop_h = min(width, height * to_w // to_h), min(height, width * to_h // to_w)
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return left, top, left + crop_w, top + crop_h


def _eight_bit(img: Image.Image) -> Image.Image:
    """16- and 32-bit grey scaled to 8 bits (Pillow's own conversion clips them at 255,
    which turns a 16-bit picture white); float grey taken as [0, 1] or [0, 255]."""
    if not (img.mode.startswith("I") or img.mode == "F"):
        return img
    values = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        top = 1.0 if values.size and np.nanmax(values) <= 1 else 255.0
    else:
        top = 65535.0 if img.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
    scaled = np.clip(np.nan_to_num(values) / top * 255, 0, 255).round().astype(np.uint8)
    return Image.fromarray(scaled)
