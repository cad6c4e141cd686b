"""What every export writer takes, apart from where from and where to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ExportOptions:
    """What the safetensors and folder formats take: eval JSON files (relative to the run
    folder) whose figures travel with the weights, and float16 storage."""

    eval_files: tuple[str, ...] = ()
    half: bool = False


# write(source, out, options) -> the paths written
Writer = Callable[[Path, Path, ExportOptions], list[Path]]
