"""How much memory the machine has, and refusing work that cannot fit, before allocating.

An allocation larger than memory does not fail cleanly: the kernel's OOM killer
ends the process (or the machine swaps for hours). So readers and the training
loop estimate what they are about to allocate and compare it with this total.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from vaekit.errors import ResourceError

MEMINFO = Path("/proc/meminfo")
CGROUP_LIMIT = Path("/sys/fs/cgroup/memory.max")


def _meminfo_total() -> int | None:
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError, AttributeError):
        return None


def _cgroup_limit() -> int | None:
    """A container's memory limit (cgroup v2), which the OOM killer enforces too."""
    try:
        text = CGROUP_LIMIT.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def total_memory(device: torch.device | None = None) -> int | None:
    """Bytes of memory on `device` (RAM for the CPU, limited by the container's cgroup);
    None when it cannot be told."""
    if device is not None and device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    sizes = [s for s in (_meminfo_total(), _cgroup_limit()) if s]
    return min(sizes) if sizes else None


def human(size: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def require(needed: int, what: str, advice: str, device: torch.device | None = None) -> None:
    """ResourceError when `needed` bytes exceed the memory of `device`; `what` says what
    would need it (it names the file), `advice` how to need less."""
    total = total_memory(device)
    if total is not None and needed > total:
        gpu = device is not None and device.type == "cuda"
        where = "this GPU has" if gpu else "this machine has"
        raise ResourceError(
            f"{what} needs {human(needed)} of memory, and {where} {human(total)}; {advice}"
        )
