"""`vaekit bench`'s run: every part in order, a failing part reported, the report saved
after each part.

A part whose child process fails (RuntimeError) goes into the report's `failures`
and the rest are still measured; saving after every part means a run cut short by a
time limit still leaves its finished parts behind.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vaekit.bench.estimate_timing import part_eval
from vaekit.bench.floor import part_floor
from vaekit.bench.loops import part_graphed, part_plain, part_seed
from vaekit.bench.options import PARTS, BenchOptions
from vaekit.bench.pythae_timing import part_pythae
from vaekit.bench.report import machine, ratios
from vaekit.bench.scaling import part_scaling
from vaekit.bench.step_profile import part_profile
from vaekit.bench.tables import markdown
from vaekit.bench.train_timing import part_vaekit
from vaekit.errors import ConfigError

Part = Callable[[BenchOptions, Callable[[str], None]], dict[str, Any]]
PART_FUNCTIONS: dict[str, Part] = {
    "seed": part_seed,
    "plain": part_plain,
    "graphed": part_graphed,
    "floor": part_floor,
    "vaekit": part_vaekit,
    "pythae": part_pythae,
    "eval": part_eval,
    "profile": part_profile,
    "scaling": part_scaling,
}


def _new_report(options: BenchOptions) -> dict[str, Any]:
    """The report before any part: machine, options, the command, empty results."""
    report: dict[str, Any] = {"machine": machine(), "options": asdict(options)}
    report["command"] = "vaekit " + " ".join(sys.argv[1:]) if sys.argv[1:] else None
    report["machine"]["load_by_part"] = {}
    report["results"] = {}
    report["failures"] = {}
    return report


def _run_part(name: str, options: BenchOptions, report: dict, log: Callable[[str], None]) -> None:
    """Measure one part into `report`; a failed child is recorded, not raised."""
    log(f"[{name}]")
    before = os.getloadavg()[0]
    try:
        report["results"][name] = PART_FUNCTIONS[name](options, log)
    except RuntimeError as error:  # a child failed: report it, measure the rest
        report["failures"][name] = str(error)
        log(f"  {name} failed: {error}")
    # 1-minute load averages around the part: other jobs on the machine show here
    report["machine"]["load_by_part"][name] = [before, os.getloadavg()[0]]


def run(
    options: BenchOptions,
    log: Callable[[str], None] = print,
    after_part: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Measure every part in `options.parts`, in order; returns the JSON-ready report.

    `after_part` gets the report as it stands after each part (ratios of what is measured
    so far), so a run cut short by a time limit still leaves its finished parts behind.
    """
    unknown = set(options.parts) - set(PARTS)
    if unknown:
        raise ConfigError(f"unknown bench part(s) {', '.join(sorted(unknown))}; known: {PARTS}")
    with tempfile.TemporaryDirectory(prefix="vaekit-bench-") as tmp:
        options.work_dir = options.work_dir or tmp
        Path(options.work_dir).mkdir(parents=True, exist_ok=True)
        report = _new_report(options)
        started = time.perf_counter()
        for name in (name for name in PARTS if name in options.parts):  # PARTS' order
            _run_part(name, options, report, log)
            report["ratios"] = ratios(report["results"])
            report["seconds"] = time.perf_counter() - started
            report["machine"]["load_average_at_end"] = os.getloadavg()
            if after_part:
                after_part(report)
    return report


def write(report: dict[str, Any], json_path: Path | None, markdown_path: Path | None) -> list[Path]:
    """Save the report as JSON and/or Markdown; returns the paths written."""
    written = []
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        written.append(json_path)
    if markdown_path:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(markdown(report) + "\n")
        written.append(markdown_path)
    return written
