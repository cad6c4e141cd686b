"""Child processes: every measurement runs in a fresh one, one after the other.

A fresh process per measurement gives each its own threads, allocator and peak
memory (which the kernel reports through `wait4`); running them one at a time keeps
them from sharing the machine. A failing child raises RuntimeError with its last
stderr lines, which the runner reports as that part's failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vaekit.bench.options import BenchOptions, base_spec, examples
from vaekit.bench.summary import log_line, summarize

CHILD_MODULE = "vaekit.bench.child"  # `python -m vaekit.bench.child NAME SPEC`


@dataclass
class Finished:
    """A child process's last JSON line, its wall time and its peak resident memory."""

    record: dict[str, Any]
    wall: float
    peak_rss_mib: float


def run_process(command: list[str], env: dict[str, str] | None = None) -> Finished:
    """Run `command` to its end; raise RuntimeError (with stderr's tail) on failure.

    Output goes to temporary files rather than pipes, so a chatty child cannot block on
    a full pipe, and the child is reaped with `wait4`, which returns its own peak memory.
    """
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=err,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode:
        tail = "\n".join(stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{' '.join(command[:4])}... exited {proc.returncode}: {tail}")
    return Finished(_last_record(stdout), wall, usage.ru_maxrss / 1024)


def _last_record(stdout: str) -> dict[str, Any]:
    """The child's result: its last line that is a JSON object ({} when none is)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}


def run_child(name: str, spec: dict[str, Any]) -> Finished:
    """One of `vaekit.bench.child`'s measurements in a fresh interpreter."""
    command = [sys.executable, "-m", CHILD_MODULE, name, json.dumps(spec)]
    return run_process(command)


def repeated(
    child: str, label: str, options: BenchOptions, log: Callable[[str], None]
) -> dict[str, Any]:
    """Run a child pipeline once per repetition (a new seed each) and summarise."""
    reps = []
    for rep in range(options.repetitions):
        done = run_child(child, base_spec(options) | {"seed": options.seed + rep})
        reps.append(done.record | {"peak_rss_mib": done.peak_rss_mib})
    summary = summarize(reps, examples(options))
    log_line(log, label, summary)
    return summary
