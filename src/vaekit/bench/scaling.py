"""Scaling tables: `vaekit train` as batch, hidden and latent sizes grow, beside the floor.

One size changes per table, the others stay at the seed's, so each row's cost and
its distance to the floor show what that size alone does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vaekit.bench.floor import floor_summary
from vaekit.bench.options import SEED_SIZES, BenchOptions, examples, work_dir
from vaekit.bench.summary import summarize
from vaekit.bench.train_timing import run_vaekit_train

AXES = {"batch_size": "batch", "hidden": "hidden", "latent": "latent"}  # table -> size


def scaling_row(options: BenchOptions, axis: str, value: int) -> dict[str, Any]:
    """One fp32 training at one size, its floor, GFLOP/s and final losses."""
    sizes = SEED_SIZES | {AXES[axis]: value}
    run_dir = work_dir(options) / f"scaling-{axis}-{value}"
    run = run_vaekit_train(options, run_dir, "fp32", options.scaling_epochs, options.seed, sizes)
    timed = summarize([run], examples(options))
    floor = floor_summary(options, "fp32", **sizes, epochs=1, repetitions=1)
    return {
        axis: value,
        "s_per_epoch": timed["s_per_epoch"],
        "floor_s_per_epoch": floor["s_per_epoch"],
        "gflop_per_epoch": floor["gflop_per_epoch"],
        "gflop_per_s": floor["gflop_per_epoch"] / timed["s_per_epoch"],
        "final_loss": run["losses"][-1],
        "final_test_loss": run["test_losses"][-1],
        "peak_rss_mib": run["peak_rss_mib"],
    }


def part_scaling(options: BenchOptions, log: Callable[[str], None]) -> dict[str, Any]:
    """Time per epoch, floor and final loss as one size grows, the others at the seed's."""
    axes = {
        "batch_size": options.batch_sizes,
        "hidden": options.hidden_sizes,
        "latent": options.latent_sizes,
    }
    tables: dict[str, list[dict[str, Any]]] = {}
    for axis, values in axes.items():
        tables[axis] = []
        for value in values:
            row = scaling_row(options, axis, value)
            tables[axis].append(row)
            log(
                f"  {axis}={value}: {row['s_per_epoch']:.3f} s/epoch "
                f"(floor {row['floor_s_per_epoch']:.3f}), loss {row['final_loss']:.2f}"
            )
    return {"epochs": options.scaling_epochs, "precision": "fp32", "tables": tables}
