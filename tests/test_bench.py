"""`vaekit bench`: the quick mode runs end to end and reports well-formed numbers.

No timing is asserted: speed belongs in the benchmark's report, not in tests.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from vaekit.bench import suite, tables
from vaekit.cli import main


def _positive(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_matmul_count_and_flops_of_the_seed_model():
    """5 forward products, 5 weight gradients, 4 input gradients (none for the images)."""
    products = suite.mlp_products(128, 400, 2)
    assert len(products) == 14
    per_step = suite.products_flops(products)
    # forward 2*B*(784*400 + 2*400*2 + 2*400 + 400*784); backward twice that, less fc1's dx
    forward = 2 * 128 * (784 * 400 + 400 * 2 * 2 + 2 * 400 + 400 * 784)
    assert per_step == 3 * forward - 2 * 128 * 784 * 400
    assert suite.epoch_flops(256, 128, 400, 2) == 2 * per_step


def test_summary_takes_median_after_warm_up_and_spread_of_repetitions():
    reps = [
        {"seconds": [9.0, 1.0, 2.0, 3.0], "losses": [5.0, 4.0], "peak_rss_mib": 10.0},
        {"seconds": [9.0, 4.0, 5.0, 6.0], "losses": [5.0, 2.0], "peak_rss_mib": 12.0},
    ]
    summary = suite.summarize(reps, examples=600)
    assert summary["s_per_epoch"] == 3.5  # median of 1..6, the warm-up epochs left out
    assert (summary["min"], summary["max"]) == (2.0, 5.0)
    assert summary["samples_per_s"] == 600 / 3.5
    assert summary["final_loss"] == 3.0 and summary["peak_rss_mib"] == 12.0


def test_ratios_against_seed_floor_pythae_and_plain():
    results = {
        "seed": {"s_per_epoch": 8.0},
        "pythae": {"s_per_epoch": 4.0},
        "plain": {"s_per_epoch": 2.0, "final_loss": 100.0},
        "floor": {"fp32": {"s_per_epoch": 1.0}, "bf16": {"s_per_epoch": 0.5}},
        "vaekit": {
            "skipped": {},
            "fp32": {"s_per_epoch": 2.0, "final_loss": 100.2},
            "bf16": {"s_per_epoch": 1.0, "final_loss": 100.4},
        },
    }
    r = suite.ratios(results)
    assert r["fp32"]["speedup_vs_seed"] == 4.0 and r["fp32"]["times_floor"] == 2.0
    assert r["bf16"]["times_floor"] == 2.0 and r["bf16"]["times_fp32_floor"] == 1.0
    assert r["fp32"]["speedup_vs_pythae"] == 2.0
    assert r["bf16"]["loss_vs_fp32"] == pytest.approx(0.2 / 100.2)
    assert r["fp32"]["loss_vs_plain"] == pytest.approx(0.002)


def test_quick_bench_writes_a_well_formed_report(mnist_dir, tmp_path, capsys):
    out_json, out_md = tmp_path / "bench.json", tmp_path / "bench.md"
    code = main(
        [
            "bench",
            "--quick",
            "--data-dir",
            str(mnist_dir),
            "--parts",
            "seed,plain,graphed,floor,vaekit",
            "--precisions",
            "fp32",
            "--limit",
            "1000",
            "--json",
            str(out_json),
            "--markdown",
            str(out_md),
        ]
    )
    assert code == 0, capsys.readouterr().err
    report = json.loads(out_json.read_text())
    assert report["machine"]["threads"] >= 1 and report["machine"]["torch"]
    results = report["results"]
    assert set(results) == {"seed", "plain", "graphed", "floor", "vaekit"}
    measured = [results["seed"], results["plain"], results["floor"]["fp32"]]
    for summary in [*measured, results["vaekit"]["fp32"]]:
        assert _positive(summary["s_per_epoch"]) and _positive(summary["samples_per_s"])
        assert _positive(summary["peak_rss_mib"])
    assert _positive(results["floor"]["fp32"]["gflop_per_s"])
    for summary in (results["seed"], results["vaekit"]["fp32"]):
        assert 100 < summary["final_loss"] < 600  # per-sample -ELBO of MNIST, early on
    ratios = report["ratios"]["fp32"]
    assert _positive(ratios["speedup_vs_seed"]) and _positive(ratios["times_floor"])
    text = out_md.read_text()
    assert "(a) seed notebook pipeline" in text and "`vaekit train`, fp32" in text
    if not torch.cuda.is_available():  # graph capture is measured on a GPU only
        assert results["graphed"] == {"skipped": "CUDA graphs need a CUDA device"}
        assert "CUDA graph: skipped" in text


def test_markdown_renders_every_section_from_a_full_report():
    row = {"s_per_epoch": 1.0, "min": 0.9, "max": 1.1, "repetitions": 3, "samples_per_s": 6e4}
    scaling_row = {
        "s_per_epoch": 1.0,
        "floor_s_per_epoch": 0.5,
        "gflop_per_epoch": 200.0,
        "gflop_per_s": 200.0,
        "final_loss": 150.0,
        "final_test_loss": 149.0,
    }
    report = {
        "machine": {
            "cpu": "x",
            "cores": 2,
            "avx512_bf16": True,
            "amx": False,
            "cuda": None,
            "torch": "2",
            "threads": 2,
            "interop_threads": 2,
            "python": "3",
            "date": "d",
            "load_average_at_start": [0.1, 0.1, 0.1],
        },
        "options": {"epochs": 10, "repetitions": 3, "limit": None},
        "results": {
            "seed": row | {"final_loss": 154.0},
            "floor": {"skipped": {"fp16": "no CUDA"}, "fp32": row},
            "vaekit": {"skipped": {}, "fp32": row | {"final_loss": 154.1}},
            "plain": row | {"final_loss": 154.0},
            "graphed": row | {"s_per_epoch": 0.1, "final_loss": 154.0},
            "pythae": row | {"final_loss": 155.0, "loss_note": "mean over batches"},
            "eval": {
                "k": 5000,
                "skipped": {},
                "fp32": {
                    "images": 500,
                    "seconds": 10.0,
                    "images_x_k_per_s": 250000.0,
                    "seconds_for_10000_images": 200.0,
                    "nll": 150.0,
                },
            },
            "scaling": {
                "epochs": 3,
                "tables": {
                    "batch_size": [scaling_row | {"batch_size": 64}],
                    "hidden": [scaling_row | {"hidden": 400}],
                    "latent": [scaling_row | {"latent": 2}],
                },
            },
        },
    }
    report["ratios"] = suite.ratios(report["results"])
    text = tables.markdown(report)
    for heading in ("## Machine", "## Training", "## Evaluation", "## Scaling", "## Notes"):
        assert heading in text
    assert "floor fp16: skipped (no CUDA)" in text
    graphed = next(line for line in text.splitlines() if "as a CUDA graph" in line)
    assert "| 0.100 |" in graphed and "| 10.00× |" in graphed  # 1.0 s seed / 0.1 s


def test_a_failing_part_is_reported_and_the_rest_still_measured(monkeypatch, tmp_path):
    def broken(options, log):
        raise RuntimeError("python -m vaekit.bench.suite... exited 1: CUDA error")

    monkeypatch.setitem(suite.PART_FUNCTIONS, "graphed", broken)
    monkeypatch.setitem(suite.PART_FUNCTIONS, "floor", lambda options, log: {"skipped": {}})
    options = suite.BenchOptions(parts=("graphed", "floor"), work_dir=str(tmp_path))
    seen = []  # what a run cut short after each part would have left on disk
    report = suite.run(options, log=lambda _: None, after_part=lambda r: seen.append(json.dumps(r)))
    assert [sorted(json.loads(r)["results"]) for r in seen] == [[], ["floor"]]
    assert json.loads(seen[0])["failures"] == {"graphed": report["failures"]["graphed"]}
    assert set(report["results"]) == {"floor"}
    assert report["failures"] == {"graphed": "python -m vaekit.bench.suite... exited 1: CUDA error"}
    assert "- graphed: failed (python -m vaekit.bench.suite" in tables.markdown(report)
