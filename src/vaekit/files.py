"""Writing files so that a crash never leaves half of one under its real name.

Checkpoints, downloaded data, cached classifiers, the run folder's JSON and the
commands' CSV outputs (`write_csv`) all go through `write_atomic`: a temporary file
beside the target, fsynced, renamed over it, and the directory fsynced, so a reader
sees the old file or the new one, whole.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


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


def write_csv(path: str | Path, columns: Mapping[str, Sequence[Any]]) -> Path:
    """Columns of equal length as CSV with a header row, written atomically. numpy
    values print as the shortest text that reads back to the same number."""
    path = Path(path)
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns of unequal lengths {sorted(lengths)}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(columns))
    writer.writerows(zip(*[[str(v) for v in values] for values in columns.values()], strict=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, out.getvalue())
