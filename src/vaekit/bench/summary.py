"""Seconds per epoch from repeated runs: the one statistic every timing part reports."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any


def summarize(repetitions: list[dict[str, Any]], examples: int, timed_from: int = 1) -> dict:
    """Seconds per epoch over all repetitions: median, spread of repetition medians.

    Epochs before `timed_from` are warm-up (the first by default) and left out.
    """
    per_rep = []
    pooled: list[float] = []
    for rep in repetitions:
        timed = rep["seconds"][timed_from:] or rep["seconds"]
        per_rep.append(statistics.median(timed))
        pooled += timed
    median = statistics.median(pooled)
    out = {
        "s_per_epoch": median,
        "min": min(per_rep),
        "max": max(per_rep),
        "repetitions": len(repetitions),
        "timed_epochs": len(pooled),
        "samples_per_s": examples / median,
    }
    losses = [rep["losses"][-1] for rep in repetitions if rep.get("losses")]
    if losses:
        out["final_loss"] = statistics.mean(losses)
        out["final_losses"] = losses
    tests = [rep["test_losses"][-1] for rep in repetitions if rep.get("test_losses")]
    if tests:
        out["final_test_loss"] = statistics.mean(tests)
    peaks = [rep["peak_rss_mib"] for rep in repetitions if rep.get("peak_rss_mib")]
    if peaks:
        out["peak_rss_mib"] = max(peaks)
    return out


def log_line(log: Callable[[str], None], name: str, summary: dict[str, Any]) -> None:
    """One progress line per measured pipeline: median, spread and final loss."""
    loss = f", loss {summary['final_loss']:.2f}" if "final_loss" in summary else ""
    log(
        f"  {name}: {summary['s_per_epoch']:.3f} s/epoch "
        f"({summary['min']:.3f}-{summary['max']:.3f}){loss}"
    )
