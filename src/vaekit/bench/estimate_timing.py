"""Timing the importance-weighted log p(x) estimate (`vaekit.evaluation.estimate`).

It times a few hundred test images at the full k and extrapolates to the 10,000 of
the test set, so the part stays minutes long while reporting what a user's
`vaekit evaluate` would take.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from vaekit.bench.options import BenchOptions, base_spec, precisions, work_dir
from vaekit.bench.processes import run_child
from vaekit.bench.train_timing import run_vaekit_train
from vaekit.runfolder import RunFolder

TEST_IMAGES = 10_000


def child_eval(spec: dict[str, Any]) -> dict[str, Any]:
    """The estimate on a trained model, after a warm-up on a few images."""
    import torch

    from vaekit import api
    from vaekit.config import EvalConfig
    from vaekit.data import load_split, to_unit
    from vaekit.evaluation.estimate import importance_weighted_estimates

    model = api.load(spec["run_dir"], spec["device"])
    device = next(model.parameters()).device
    test = load_split("mnist", "test", spec["data_dir"], False)
    x = to_unit(test.images[: spec["images"]]).to(device)
    config = EvalConfig(
        k=spec["k"], batch_size=spec["batch_size"], precision=spec["precision"], fid=False
    )
    importance_weighted_estimates(model, x[: min(10, len(x))], config, progress=False)
    started = time.perf_counter()
    log_px = importance_weighted_estimates(model, x, config, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "nll": -log_px.double().mean().item(), "images": len(x)}


def _timed(options: BenchOptions, run_dir: str, precision: str) -> dict[str, Any]:
    """One precision's estimate in a child process, as the report's row."""
    spec = base_spec(options) | {
        "run_dir": run_dir,
        "precision": precision,
        "k": options.eval_k,
        "images": options.eval_images,
        "batch_size": options.eval_batch_size,
    }
    done = run_child("eval", spec)
    rec = done.record
    rate = rec["images"] * options.eval_k / rec["seconds"]
    return {
        "images": rec["images"],
        "seconds": rec["seconds"],
        "images_x_k_per_s": rate,
        "nll": rec["nll"],
        "seconds_for_10000_images": TEST_IMAGES * options.eval_k / rate,
        "peak_rss_mib": done.peak_rss_mib,
    }


def part_eval(options: BenchOptions, log: Callable[[str], None]) -> dict[str, Any]:
    """The estimate on the vaekit part's fp32 model (trained here when that part did not run)."""
    kept, skipped = precisions(options)
    run_dir = work_dir(options) / "vaekit-fp32-0"
    out: dict[str, Any] = {"skipped": skipped, "k": options.eval_k}
    if not RunFolder(run_dir).holds_run():
        run_vaekit_train(options, run_dir, "fp32", options.epochs, options.seed)
    out["model"] = f"seed configuration after {options.epochs} epochs"
    for precision in kept:
        out[precision] = row = _timed(options, str(run_dir), precision)
        log(
            f"  eval {precision}: {row['images_x_k_per_s']:,.0f} images x k per s "
            f"(10,000 images, k={options.eval_k}: {row['seconds_for_10000_images']:.0f} s)"
        )
    return out
