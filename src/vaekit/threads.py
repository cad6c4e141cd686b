"""How many CPU threads to compute on: what the user asks, else the cores idle now.

PyTorch's default, one thread per core, collapses when another program keeps a
core busy: its OpenMP workers wait at every barrier for the thread whose core is
taken (an epoch of the seed model took 200 s instead of 6.5 s that way). So the
default counts the cores that are idle at start, from two readings of
/proc/stat a tenth of a second apart, and computes on that many (at least one).
BENCHMARKS.md has the measurements behind it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from vaekit.errors import ConfigError

SAMPLE_SECONDS = 0.1
STAT = Path("/proc/stat")


def _cpu_times() -> dict[str, tuple[int, int]] | None:
    """{cpuN: (idle ticks, total ticks)} from /proc/stat, or None where it cannot be read."""
    try:
        lines = STAT.read_text().splitlines()
    except OSError:
        return None
    out = {}
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in fields[:8]]
            out[name] = (ticks[3] + ticks[4], sum(ticks))  # idle + iowait
    return out or None


def idle_cores(seconds: float = SAMPLE_SECONDS) -> float | None:
    """How many cores' worth of time went unused over `seconds` (None: unknown)."""
    before = _cpu_times()
    time.sleep(seconds)
    after = _cpu_times()
    if before is None or after is None:
        return None
    idle = 0.0
    for name, (idle_after, total_after) in after.items():
        idle_before, total_before = before.get(name, (idle_after, total_after))
        span = total_after - total_before
        idle += (idle_after - idle_before) / span if span > 0 else 1.0
    return idle


ENV = "VAEKIT_THREADS"  # pins the default (tests, and users who want repeatable digits)


def choose(requested: int | None = None) -> int:
    """The thread count for this process: `requested`, else $VAEKIT_THREADS, else the
    idle cores (at least 1). The count can change a result's last digits."""
    if requested is None and os.environ.get(ENV):
        try:
            requested = int(os.environ[ENV])
        except ValueError:
            raise ConfigError(f"${ENV} must be a whole number; got {os.environ[ENV]!r}") from None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if requested is not None:
        if requested < 1:
            raise ConfigError(f"--threads must be >= 1; got {requested}")
        return requested
    if cores == 1:
        return 1
    idle = idle_cores()
    if idle is None:
        return cores
    return max(1, min(cores, round(idle)))


def configure(requested: int | None = None) -> int:
    """Choose the count and hand it to torch (imported here: the caller computes next)."""
    count = choose(requested)
    import torch

    torch.set_num_threads(count)
    return count


def for_run(stored: int | None, resuming: bool) -> tuple[int, str | None]:
    """A training run's count: a fresh run chooses (and keeps it in its config); a resume
    repeats the stored one, with a line when fewer cores are idle now than it uses."""
    if stored is None or not resuming:
        return choose(stored), None
    if os.environ.get(ENV):  # pinned: the user chose, nothing to suggest
        return stored, None
    idle = idle_cores()
    if idle is not None and round(idle) < stored:
        return stored, (
            f"the run computes on {stored} threads (kept so the resume repeats its digits) but "
            f"about {max(1, round(idle))} core(s) are idle: --threads {max(1, round(idle))} "
            "resumes faster, with other last digits"
        )
    return stored, None
