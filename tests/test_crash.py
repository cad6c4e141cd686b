"""A crash at any instant loses nothing: `kill -9` at random instants of real runs, and at
chosen ones (mid-write of metrics.jsonl and the checkpoint, between the two, during the
end-of-run pictures), then `--resume`, ends bit for bit where an uninterrupted run ends
(RELIABILITY.md, "A crash at any instant").

`pytest -m slow tests/test_crash.py -s` runs the 50-kill variant and prints its tally.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

import vaekit
from vaekit import checkpoint
from vaekit.runfolder import RunFolder

TIMINGS = ("seconds", "epoch_seconds")  # the wall-clock fields: the only ones that may differ

EPOCHS = 2


def _args(mnist_dir: Path) -> list[str]:
    """A small run whose training, not start-up, fills most of its time."""
    return [
        *("--data-dir", str(mnist_dir), "--no-download", "--limit", "2000"),
        *("--batch-size", "32", "--hidden-dim", "64", "--epochs", str(EPOCHS)),
        *("--no-plots", "--no-progress", "--device", "cpu"),
    ]


def _fresh(mnist_dir: Path, run: Path) -> list[str]:
    return [sys.executable, "-m", "vaekit", "train", *_args(mnist_dir), "--out", str(run)]


def _resume(run: Path) -> list[str]:
    return [sys.executable, "-m", "vaekit", "train", "--resume", str(run), "--no-progress"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mnist_dir) -> tuple[Path, float]:
    """An uninterrupted run, and how long it took here (start-up to exit)."""
    run = tmp_path_factory.mktemp("crash") / "reference"
    started = time.monotonic()
    done = subprocess.run(_fresh(mnist_dir, run), capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    return run, time.monotonic() - started


def _metrics(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in RunFolder(run).read_metrics()]


def assert_same_run(run: Path, reference: Path) -> None:
    """Weights and Adam's state bit for bit, metrics but for the seconds, the same pictures."""
    a, b = checkpoint.load(reference), checkpoint.load(run)
    assert b.progress == a.progress
    for key, value in a.model_state.items():
        assert torch.equal(value, b.model_state[key]), key
    for index, state in a.optimizer_state["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b.optimizer_state["state"][index][key]), (index, key)
    assert _metrics(run) == _metrics(reference)
    for picture in ("samples.png", "reconstructions.png"):
        assert (run / picture).read_bytes() == (reference / picture).read_bytes(), picture
    assert not RunFolder(run).lock_path.exists()


def phase(run: Path) -> str:
    """Where a kill landed, told from what it left in the run folder."""
    folder = RunFolder(run)
    if not folder.config_path.is_file():
        return "start-up (imports, data), before the run folder"
    if list(run.glob(".checkpoint.safetensors.*.tmp")):
        return "while writing the checkpoint"
    if list(run.glob(".*.tmp")):
        return "while writing config.json or repairing metrics.jsonl"
    text = folder.metrics_path.read_text() if folder.metrics_path.is_file() else ""
    if text and not text.endswith("\n"):
        return "while writing metrics.jsonl"
    done = checkpoint.load(run).progress["epoch"] if folder.holds_run() else 0
    if len(folder.read_metrics()) > done:
        return "between an epoch's record and its checkpoint"
    if done == EPOCHS:
        return "end-of-run pictures"
    return f"epoch {done + 1} (its steps or its test pass)"


def _start(command: list[str], log: Path) -> subprocess.Popen:
    with open(log, "a") as err:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)


def _config_stamp(run: Path) -> int | None:
    config = run / "config.json"
    return config.stat().st_mtime_ns if config.is_file() else None


def _kill_after(proc: subprocess.Popen, delay: float) -> bool:
    """kill -9 after `delay` seconds; False when the process ended before."""
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=60)
        return True


def kill_at_random_instants(
    kills: int,
    mnist_dir: Path,
    reference: tuple[Path, float],
    work: Path,
    seed: int,
    per_run: int = 2,
) -> tuple[Counter, int]:
    """Start a run and `kill -9` it after a delay drawn uniformly from the duration of an
    uninterrupted run; resume it (`--resume`, or the first command when the kill came
    before config.json) and kill that too, up to `per_run` kills; let the last resume
    finish and check it against the reference; again in a fresh folder until `kills`
    kills. The duration is the reference run's, or a shorter one measured since (a fresh
    run that ended before its kill: the machine's load changes). Returns the phases hit
    (and how many runs ended before a kill) and the number of folders."""
    rng = random.Random(seed)
    reference_run, duration = reference
    phases: Counter = Counter()
    runs = 0
    while sum(phases.values()) - phases["(ended before its kill)"] < kills:
        run, runs = work / f"run{runs}", runs + 1
        finished = False
        for attempt in range(per_run):
            if sum(phases.values()) - phases["(ended before its kill)"] == kills:
                break
            stamp = _config_stamp(run)
            command = _resume(run) if stamp else _fresh(mnist_dir, run)
            started = time.monotonic()
            proc = _start(command, work / "stderr.log")
            if not _kill_after(proc, rng.uniform(0, duration)):
                assert proc.returncode == 0, (seed, (work / "stderr.log").read_text()[-2000:])
                phases["(ended before its kill)"] += 1
                if attempt == 0:
                    duration = min(duration, time.monotonic() - started)
                finished = True
                break
            unchanged = stamp is not None and _config_stamp(run) == stamp
            phases["start-up of a resume (imports, data)" if unchanged else phase(run)] += 1
        if not finished:
            command = _resume(run) if _config_stamp(run) else _fresh(mnist_dir, run)
            code = _start(command, work / "stderr.log").wait(timeout=max(600, 20 * duration))
            assert code == 0, (seed, (work / "stderr.log").read_text()[-2000:])
        assert_same_run(run, reference_run)
    return phases, runs


def _report(kills: int, phases: Counter, runs: int, seed: int, seconds: float) -> str:
    lines = [f"{kills} kills in {runs} run folders (seed {seed}, reference run {seconds:.1f} s):"]
    lines += [f"  {count:3d}  {name}" for name, count in phases.most_common()]
    return "\n".join(lines)


def _seed() -> int:
    return int(os.environ.get("VAEKIT_KILL_SEED") or time.time_ns() % 2**32)


def test_kill_9_at_random_instants_then_resume_is_bit_identical(reference, mnist_dir, tmp_path):
    seed = _seed()
    phases, runs = kill_at_random_instants(8, mnist_dir, reference, tmp_path, seed)
    print(_report(8, phases, runs, seed, reference[1]))


@pytest.mark.slow
def test_fifty_kills_at_random_instants(reference, mnist_dir, tmp_path):
    seed = _seed()
    phases, runs = kill_at_random_instants(50, mnist_dir, reference, tmp_path, seed)
    report = _report(50, phases, runs, seed, reference[1])
    print(report)
    if os.environ.get("VAEKIT_KILL_REPORT"):
        Path(os.environ["VAEKIT_KILL_REPORT"]).write_text(report + "\n")


# --------------------------------------------------------------- crashes at chosen instants

# Each script makes one function end the process (os._exit: no cleanup, as kill -9) at
# its n-th call, then runs the reference's command line.
CRASHES = {
    # this run (MLP, fp32, CPU) takes the fast path: its step is FastMLPStep.step
    "mid-step": ("vaekit.training.fast_mlp", "FastMLPStep.steps", 6, "real(*a, **k)"),
    "metrics-line-torn": (
        "vaekit.runfolder",
        "RunFolder.append_metrics",
        2,
        "open(a[0].metrics_path, 'a').write(json.dumps(a[1])[:40])",
    ),
    "before-the-first-checkpoint": ("vaekit.checkpoint", "save", 1, "pass"),
    "record-before-checkpoint": ("vaekit.checkpoint", "save", 2, "pass"),
    "checkpoint-before-pictures": ("vaekit.checkpoint", "save", 2, "real(*a, **k)"),
    "checkpoint-half-written": (
        "vaekit.files",
        "write_atomic",
        None,
        "open(files.temporary_name(Path(a[0])), 'wb').write(a[1][: len(a[1]) // 2])",
    ),
    "pictures": ("vaekit.pictures", "save_png", 1, "pass"),
}


def _crash_script(case: str, argv: list[str]) -> str:
    module, name, nth, before = CRASHES[case]
    owner, _, attribute = name.rpartition(".")
    when = "calls['n'] == " + (str(nth) if nth else "2 and str(a[0]).endswith('.safetensors')")
    return textwrap.dedent(f"""
        import importlib, json, os, sys
        from pathlib import Path
        from vaekit import files
        from vaekit.cli import main
        holder = importlib.import_module({module!r})
        target = getattr(holder, {owner!r}) if {owner!r} else holder
        real = getattr(target, {attribute!r})
        calls = {{"n": 0}}
        def crashing(*a, **k):
            if {nth is None!r} and not str(a[0]).endswith('checkpoint.safetensors'):
                return real(*a, **k)
            calls["n"] += 1
            if {when}:
                {before}
                os._exit(137)
            return real(*a, **k)
        setattr(target, {attribute!r}, crashing)
        sys.exit(main({argv!r}))
    """)


@pytest.mark.parametrize("case", list(CRASHES))
def test_a_crash_at_a_chosen_instant_then_resume_is_bit_identical(
    case, reference, mnist_dir, tmp_path
):
    run = tmp_path / "run"
    argv = ["train", *_args(mnist_dir), "--out", str(run)]
    crashed = subprocess.run(
        [sys.executable, "-c", _crash_script(case, argv)], capture_output=True, text=True
    )
    assert crashed.returncode == 137, crashed.stderr
    folder = RunFolder(run)
    if case == "metrics-line-torn":
        assert not folder.metrics_path.read_text().endswith("\n")
    if case == "checkpoint-half-written":
        assert list(run.glob(".checkpoint.safetensors.*.tmp"))
    if case == "before-the-first-checkpoint":  # config.json alone: --resume starts afresh
        assert folder.config_path.is_file() and not folder.holds_run()
    vaekit.resume(run, log=lambda _: None, progress=False)
    assert_same_run(run, reference[0])
    assert not list(run.glob(".*.tmp"))
    assert [r["epoch"] for r in folder.read_metrics()] == list(range(1, EPOCHS + 1))
    json.loads(folder.config_path.read_text())
