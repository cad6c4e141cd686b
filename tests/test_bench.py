"""`vaekit bench`: the quick mode runs end to end and reports well-formed numbers.

No timing is asserted: speed belongs in the benchmark's report, not in tests.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from vaekit import native
from vaekit.bench import floor, pythae_timing, runner, step_profile, summary, tables, train_timing
from vaekit.bench import report as bench_report
from vaekit.bench.options import BenchOptions
from vaekit.bench.processes import Finished, run_process
from vaekit.bench.step_profile import PIECES, child_profile
from vaekit.cli import main
from vaekit.runfolder import RunFolder
from vaekit.runtime import resolve_device


def _positive(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_matmul_count_and_flops_of_the_seed_model():
    """5 forward products, 5 weight gradients, 4 input gradients (none for the images)."""
    products = floor.mlp_products(128, 400, 2)
    assert len(products) == 14
    per_step = floor.products_flops(products)
    # forward 2*B*(784*400 + 2*400*2 + 2*400 + 400*784); backward twice that, less fc1's dx
    forward = 2 * 128 * (784 * 400 + 400 * 2 * 2 + 2 * 400 + 400 * 784)
    assert per_step == 3 * forward - 2 * 128 * 784 * 400
    assert floor.epoch_flops(256, 128, 400, 2) == 2 * per_step


def test_summary_takes_median_after_warm_up_and_spread_of_repetitions():
    reps = [
        {"seconds": [9.0, 1.0, 2.0, 3.0], "losses": [5.0, 4.0], "peak_rss_mib": 10.0},
        {"seconds": [9.0, 4.0, 5.0, 6.0], "losses": [5.0, 2.0], "peak_rss_mib": 12.0},
    ]
    s = summary.summarize(reps, examples=600)
    assert s["s_per_epoch"] == 3.5  # median of 1..6, the warm-up epochs left out
    assert (s["min"], s["max"]) == (2.0, 5.0)
    assert s["samples_per_s"] == 600 / 3.5
    assert s["final_loss"] == 3.0 and s["peak_rss_mib"] == 12.0


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
    r = bench_report.ratios(results)
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
    for s in [*measured, results["vaekit"]["fp32"]]:
        assert _positive(s["s_per_epoch"]) and _positive(s["samples_per_s"])
        assert _positive(s["peak_rss_mib"])
    assert _positive(results["floor"]["fp32"]["gflop_per_s"])
    if native.available():  # the floor is the faster of torch.mm and the kernels' sgemm
        fp32 = results["floor"]["fp32"]
        fastest = min(fp32["torch_mm_s_per_epoch"], fp32["kernels_s_per_epoch"])
        assert fp32["s_per_epoch"] == fastest
    for s in (results["seed"], results["vaekit"]["fp32"]):
        assert 100 < s["final_loss"] < 600  # per-sample -ELBO of MNIST, early on
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
            "profile": {
                "rounds": 5,
                "pieces": {"products": {"what": "the products (F)", "ms": 2.0, "times_f": 1.0}},
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
    report["ratios"] = bench_report.ratios(report["results"])
    text = tables.markdown(report)
    headings = ("## Machine", "## Training", "## Evaluation", "## What is left", "## Scaling")
    for heading in (*headings, "## Notes"):
        assert heading in text
    assert "floor fp16: skipped (no CUDA)" in text
    graphed = next(line for line in text.splitlines() if "as a CUDA graph" in line)
    assert "| 0.100 |" in graphed and "| 10.00× |" in graphed  # 1.0 s seed / 0.1 s


def test_the_profile_times_every_piece_of_the_fast_step(mnist_dir):
    if not native.available():
        pytest.skip("the profile needs the C kernels")
    spec = {"data_dir": str(mnist_dir), "limit": 2000, "epochs": 1}
    spec |= {"batch_size": 128, "hidden": 400, "latent": 2, "device": "cpu"}
    seconds = child_profile(spec)["seconds"]
    assert set(seconds) == set(PIECES)
    assert all(0 < s < 10 for s in seconds.values())  # no timing relation: load is noise


def test_the_profile_part_gives_each_piece_per_step_and_as_multiples_of_f(monkeypatch):
    record = {"seconds": {name: 0.001 * (i + 1) for i, name in enumerate(PIECES)}, "rounds": 7}
    monkeypatch.setattr(step_profile, "run_child", lambda name, spec: Finished(record, 0.0, 1.0))
    out = step_profile.part_profile(BenchOptions(data_dir="x"), log=lambda _: None)
    pieces = out["pieces"]
    assert pieces["products"]["times_f"] == 1.0 and pieces["adam"]["ms"] == pytest.approx(4.0)
    assert pieces["checkpoint"]["times_f"] == pytest.approx(7.0) and out["rounds"] == 7


def test_a_failing_part_is_reported_and_the_rest_still_measured(monkeypatch, tmp_path):
    def broken(options, log):
        raise RuntimeError("python -m vaekit.bench.child... exited 1: CUDA error")

    monkeypatch.setitem(runner.PART_FUNCTIONS, "graphed", broken)
    monkeypatch.setitem(runner.PART_FUNCTIONS, "floor", lambda options, log: {"skipped": {}})
    options = BenchOptions(parts=("graphed", "floor"), work_dir=str(tmp_path))
    seen = []  # what a run cut short after each part would have left on disk
    done = runner.run(options, log=lambda _: None, after_part=lambda r: seen.append(json.dumps(r)))
    assert [sorted(json.loads(r)["results"]) for r in seen] == [[], ["floor"]]
    assert json.loads(seen[0])["failures"] == {"graphed": done["failures"]["graphed"]}
    assert set(done["results"]) == {"floor"}
    assert done["failures"] == {"graphed": "python -m vaekit.bench.child... exited 1: CUDA error"}
    assert "- graphed: failed (python -m vaekit.bench.child" in tables.markdown(done)


def test_a_child_that_exits_nonzero_fails_its_part_and_the_saved_report_says_so(
    monkeypatch, tmp_path
):
    """A real child process: its exit status and stderr reach the report on disk."""
    crash = [sys.executable, "-c", "import sys; sys.stderr.write('out of memory'); sys.exit(3)"]
    monkeypatch.setitem(runner.PART_FUNCTIONS, "seed", lambda options, log: run_process(crash))
    monkeypatch.setitem(runner.PART_FUNCTIONS, "floor", lambda options, log: {"skipped": {}})
    out_json, out_md = tmp_path / "b.json", tmp_path / "b.md"
    options = BenchOptions(parts=("seed", "floor"), work_dir=str(tmp_path))
    runner.run(options, log=lambda _: None, after_part=lambda r: runner.write(r, out_json, out_md))
    saved = json.loads(out_json.read_text())
    assert "exited 3: out of memory" in saved["failures"]["seed"]
    assert set(saved["results"]) == {"floor"}
    assert "- seed: failed (" in out_md.read_text()


def test_run_process_returns_the_last_json_line_and_peak_memory():
    script = "print('{not the record'); print('{\"a\": 1}'); print('done')"
    done = run_process([sys.executable, "-c", script])
    assert done.record == {"a": 1}
    assert done.peak_rss_mib > 0 and done.wall > 0


def _fake_train(seconds: list[float], calls: list[list[str]]):
    """A `vaekit train` stand-in: writes one epoch record per entry of `seconds` into the
    run folder named by --out and prints nothing (the timings must come from the records)."""

    def run(command: list[str], env=None) -> Finished:
        calls.append(command)
        folder = RunFolder(command[command.index("--out") + 1]).create()
        for epoch, s in enumerate(seconds, 1):
            record = {"epoch": epoch, "seconds": s, "train_loss": 150.0 - epoch}
            folder.append_metrics(record | {"test_loss": 151.0 - epoch, "train_skipped": 0})
        return Finished({}, wall=sum(seconds) + 1.0, peak_rss_mib=100.0)

    return run


def test_train_timing_comes_from_the_run_folders_epoch_records(monkeypatch, tmp_path):
    calls: list[list[str]] = []
    # epoch 1 is warm-up; the timed epochs' median is 2.0 s against the seed's 8.0 s
    monkeypatch.setattr(train_timing, "run_process", _fake_train([5.0, 2.0, 2.0, 3.0], calls))
    monkeypatch.setitem(runner.PART_FUNCTIONS, "seed", lambda options, log: {"s_per_epoch": 8.0})
    options = BenchOptions(
        parts=("seed", "vaekit"), epochs=4, precisions=("fp32",), device="cpu", limit=1000
    )
    options.work_dir = str(tmp_path)
    done = runner.run(options, log=lambda _: None)
    fp32 = done["results"]["vaekit"]["fp32"]
    assert fp32["s_per_epoch"] == 2.0 and fp32["timed_epochs"] == 3 * 3  # 3 repetitions
    assert fp32["samples_per_s"] == 1000 / 2.0
    assert fp32["final_loss"] == 146.0 and fp32["final_test_loss"] == 147.0
    assert fp32["wall_per_run"] == 13.0
    assert done["ratios"]["fp32"]["speedup_vs_seed"] == 4.0
    # one run per repetition and row, interleaved: the fast path, then --no-fast-path
    assert len(calls) == 6
    assert ["--no-fast-path" in call for call in calls] == [False, True] * 3
    assert done["results"]["vaekit"]["fp32-autograd"]["s_per_epoch"] == 2.0
    assert done["ratios"]["fp32-autograd"]["speedup_vs_seed"] == 4.0
    assert calls[0][calls[0].index("--epochs") + 1] == "4"


def test_a_train_run_without_epoch_records_is_a_failure_not_a_zero(monkeypatch, tmp_path):
    monkeypatch.setattr(train_timing, "run_process", _fake_train([], []))
    options = BenchOptions(parts=("vaekit",), precisions=("fp32",), device="cpu", repetitions=1)
    options.work_dir = str(tmp_path)
    done = runner.run(options, log=lambda _: None)
    assert "left no epoch records" in done["failures"]["vaekit"]


@pytest.mark.parametrize("device", ["cpu", "cuda:0"])
def test_pythae_runs_on_the_bench_device(monkeypatch, tmp_path, device):
    """The driver gets the bench's device, so "vs pythae" compares like with like."""
    python = tmp_path / "python"
    python.write_text("")  # only its existence is checked: the driver is never started
    commands: list[list[str]] = []

    def fake_driver(command: list[str], env=None) -> Finished:
        commands.append(command)
        on = command[command.index("--device") + 1]
        record = {"seconds": [3.0, 1.0], "losses": [160.0, 150.0], "device": on, "torch": "x"}
        return Finished(record, wall=5.0, peak_rss_mib=300.0)

    monkeypatch.setattr(pythae_timing, "run_process", fake_driver)
    monkeypatch.setattr(pythae_timing, "_save_images", lambda options, path: None)
    monkeypatch.setattr(pythae_timing, "bench_device", lambda options: device)
    options = BenchOptions(pythae_python=str(python), epochs=2, repetitions=2, limit=500)
    result = pythae_timing.part_pythae(options, log=lambda _: None)
    assert [c[c.index("--device") + 1] for c in commands] == [device, device]
    assert [c[c.index("--seed") + 1] for c in commands] == ["0", "1"]
    assert Path(commands[0][1]).name == "pythae_driver.py"
    assert result["device"] == device and result["s_per_epoch"] == 1.0


def test_pythae_device_is_the_resolved_bench_device(monkeypatch, tmp_path):
    """`--device auto` reaches the driver as the device it resolves to here (cpu or cuda)."""
    python = tmp_path / "python"
    python.write_text("")
    seen = []

    def fake_driver(command: list[str], env=None) -> Finished:
        seen.append(command)
        return Finished({"seconds": [1.0, 1.0], "losses": [1.0]}, wall=1.0, peak_rss_mib=1.0)

    monkeypatch.setattr(pythae_timing, "_save_images", lambda options, path: None)
    monkeypatch.setattr(pythae_timing, "run_process", fake_driver)
    options = BenchOptions(pythae_python=str(python), repetitions=1, device="auto")
    pythae_timing.part_pythae(options, log=lambda _: None)
    assert seen[0][seen[0].index("--device") + 1] == str(resolve_device("auto"))
