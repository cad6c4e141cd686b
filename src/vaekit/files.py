"""Writing files so that a crash never leaves half of one under its real name.

Checkpoints, downloaded data, cached classifiers and the run folder's JSON all
go through `write_atomic`: a temporary file beside the target, fsynced, renamed
over it, and the directory fsynced, so a reader sees the old file or the new
one, whole.
"""

from __future__ import annotations

import os
from pathlib import Path


def temporary_name(path: Path) -> Path:
    """The hidden name a write to `path` goes through (one per process)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_atomic(path: str | Path, payload: bytes | str) -> Path:
    """Write `payload` to `path` via temp file + fsync + rename; returns the path.

    Raises OSError (the temp file removed) when the write fails; the old file is kept.
    """
    path = Path(path)
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def fsync_directory(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(path: Path) -> None:
    """Delete temp files of `path` left by writers killed mid-write."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
