"""IDX files (the MNIST format): parse, decompress and verify, with errors that name the file."""

from __future__ import annotations

import gzip
import hashlib
import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vaekit.errors import DataError

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class FileSpec:
    """One IDX file and the md5/sha256 of its uncompressed content."""

    name: str
    md5: str
    sha256: str
    gz_md5: str | None = None  # md5 of the official .gz, checked on download

    @property
    def magic(self) -> bytes | None:
        """The header's first 4 bytes when the name says them (`...-idx3-ubyte`: 0x00000803)."""
        match = re.search(r"-idx(\d)-ubyte$", self.name)
        return bytes([0, 0, 0x08, int(match[1])]) if match else None


def parse_idx(content: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse uncompressed IDX bytes, checking the magic number and that sizes agree."""
    if len(content) < 4:
        raise DataError(f"{source}: too short for an IDX header ({len(content)} bytes)")
    if content[0] != 0 or content[1] != 0 or content[2] not in _IDX_DTYPES:
        raise DataError(
            f"{source}: bad IDX magic number 0x{content[:4].hex()} "
            "(expected 0x0000 then a type code 08/09/0B/0C/0D/0E and the rank)"
        )
    dtype, ndim = _IDX_DTYPES[content[2]], content[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(content) < header:
        raise DataError(f"{source}: truncated IDX header (rank {ndim}, {len(content)} bytes)")
    dims = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(dims) * dtype.itemsize  # Python ints: no overflow
    if len(content) != expected:
        shape = "x".join(map(str, dims))
        raise DataError(
            f"{source}: dimensions {shape} need {expected} bytes, file has {len(content)}"
            + (" (truncated)" if len(content) < expected else " (trailing data)")
        )
    array = np.frombuffer(content, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)  # writable, native order


def read_bytes(path: Path) -> bytes:
    """The uncompressed content of a raw or gzip-compressed file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    return gunzip(raw, str(path)) if raw[:2] == _GZIP_MAGIC else raw


def gunzip(payload: bytes, source: str) -> bytes:
    try:
        return gzip.decompress(payload)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataError(f"{source}: corrupt or truncated gzip data ({exc})") from None


def verify(content: bytes, spec: FileSpec, source: str) -> None:
    digest = hashlib.sha256(content).hexdigest()
    if digest != spec.sha256:
        raise DataError(
            f"{source}: checksum mismatch for {spec.name}: "
            f"sha256 expected {spec.sha256}, found {digest}"
        )


def read_idx(path: str | Path, spec: FileSpec | None = None) -> np.ndarray:
    """Read an IDX file (raw or .gz), verifying its content against `spec` when given.

    The structure is checked before the checksum, so a truncated or foreign file is
    reported as such rather than as a bare checksum mismatch.
    """
    path = Path(path)
    content = read_bytes(path)
    if spec is not None and spec.magic and content[:4] != spec.magic:
        raise DataError(
            f"{path}: IDX magic number 0x{content[:4].hex()}, expected 0x{spec.magic.hex()} "
            f"for {spec.name}"
        )
    array = parse_idx(content, str(path))
    if spec is not None:
        verify(content, spec, str(path))
    return array
