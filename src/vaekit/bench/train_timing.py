"""Timing `vaekit train` as a user runs it, in its own process, once per precision.

The seconds per epoch are the ones the training loop itself records in the run
folder's metrics (`RunFolder.read_metrics`): `epoch_seconds`, the whole epoch a user
waits for (optimiser steps, checkpoint and per-epoch test loss), without the
interpreter's start-up and the data loading; runs older than that field give their
`seconds` (the steps alone). Reading them there rather than from the console output
keeps the bench independent of how `vaekit train` words its log lines.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaekit.bench.options import (
    SEED_SIZES,
    BenchOptions,
    child_env,
    examples,
    precisions,
    work_dir,
)
from vaekit.bench.processes import run_process
from vaekit.bench.summary import log_line, summarize
from vaekit.runfolder import RunFolder


def train_command(
    options: BenchOptions,
    run_dir: Path,
    precision: str,
    sizes: dict[str, int],
    epochs: int,
    seed: int,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """The `vaekit train` command line of one measured run (no pictures, plots or bar)."""
    command = [sys.executable, "-m", "vaekit", "train", "--out", str(run_dir), *extra]
    command += ["--epochs", str(epochs), "--precision", precision]
    command += ["--batch-size", str(sizes["batch"]), "--hidden-dim", str(sizes["hidden"])]
    command += ["--latent-dim", str(sizes["latent"]), "--seed", str(seed)]
    command += ["--device", options.device, "--no-download"]
    command += ["--no-pictures", "--no-plots", "--no-progress"]
    if options.data_dir:
        command += ["--data-dir", options.data_dir]
    if options.limit:
        command += ["--limit", str(options.limit)]
    return command


def read_run(run_dir: Path) -> dict[str, Any]:
    """A finished run's seconds, train and test losses and skipped steps per epoch."""
    metrics = RunFolder(run_dir).read_metrics()
    if not metrics:
        raise RuntimeError(f"vaekit train left no epoch records in {run_dir}")
    return {
        "seconds": [m.get("epoch_seconds", m["seconds"]) for m in metrics],
        "losses": [m["train_loss"] for m in metrics],
        "test_losses": [m["test_loss"] for m in metrics],
        "skipped": sum(m.get("train_skipped", 0) for m in metrics),
    }


def run_vaekit_train(
    options: BenchOptions,
    run_dir: Path,
    precision: str,
    epochs: int,
    seed: int = 0,
    sizes: dict[str, int] | None = None,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """`vaekit train` in a child process, then its epoch records; `sizes` default to the
    seed model's batch, hidden and latent sizes; `extra`: more flags."""
    sizes = sizes or SEED_SIZES
    command = train_command(options, run_dir, precision, sizes, epochs, seed, extra)
    done = run_process(command, child_env(options))
    return read_run(run_dir) | {"wall": done.wall, "peak_rss_mib": done.peak_rss_mib}


# fp32 on the CPU takes the MLP fast path (training.fast_mlp); this row is the same run
# on the autograd path, measured in the same part so that their ratio is one run's.
AUTOGRAD = "fp32-autograd"


def part_vaekit(options: BenchOptions, log: Callable[[str], None]) -> dict[str, Any]:
    """The seed configuration with `vaekit train`, every precision this device runs, and
    fp32 once more with --no-fast-path; repetitions interleaved, so that load drifting
    over the part weighs on every row alike."""
    kept, skipped = precisions(options)
    out: dict[str, Any] = {"skipped": skipped}
    work = work_dir(options)
    rows = {precision: (precision, ()) for precision in kept}
    if "fp32" in kept:
        rows[AUTOGRAD] = ("fp32", ("--no-fast-path",))
    reps: dict[str, list] = {name: [] for name in rows}
    for rep in range(options.repetitions):
        seed = options.seed + rep  # as the seed and plain parts: one seed per repetition
        for name, (precision, extra) in rows.items():
            run_dir = work / f"vaekit-{name}-{rep}"
            record = run_vaekit_train(
                options, run_dir, precision, options.epochs, seed, None, extra
            )
            reps[name].append(record)
    for name, done in reps.items():
        out[name] = summarize(done, examples(options))
        out[name]["wall_per_run"] = statistics.median(r["wall"] for r in done)
        out[name]["skipped_steps"] = sum(r["skipped"] for r in done)
        log_line(log, f"vaekit train {name}", out[name])
    return out
