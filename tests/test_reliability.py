"""Faults during training lose nothing: signals, crashes mid-write, non-finite steps."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from vaekit import checkpoint
from vaekit.errors import TrainingDiverged
from vaekit.interrupts import StopRequest
from vaekit.objectives import training_terms
from vaekit.training import loop as loop_module
from vaekit.training import step as step_module
from vaekit.training.loop import fit
from vaekit.training.state import build_state
from vaekit.training.step import train_step

# `vaekit.train` the attribute is the API function; the module is reached by name.


def _cli(args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-u", "-m", "vaekit", "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _run_args(mnist_dir, out):
    return [
        "--data-dir",
        str(mnist_dir),
        "--no-download",
        "--limit",
        "12000",
        "--batch-size",
        "32",
        "--epochs",
        "2",
        "--no-pictures",
        "--no-progress",
        "--out",
        str(out),
    ]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_epoch_checkpoints_and_resume_matches_uninterrupted(
    sig, mnist_dir, tmp_path, untimed_metrics
):
    """The signal only sets a flag; the run saves mid-epoch, exits 128+sig, resumes exactly."""
    started = time.monotonic()
    straight = _cli(_run_args(mnist_dir, tmp_path / "straight"))
    assert straight.wait(timeout=1800) == 0, straight.stderr.read()
    # Later limits scale with how long this machine, loaded as it is now, took for the run.
    limit = max(120.0, 10 * (time.monotonic() - started))

    run = tmp_path / "stopped"
    proc = _cli(_run_args(mnist_dir, run))
    assert proc.stdout.readline().startswith("Epoch 1, Loss: ")
    time.sleep(0.2)  # well inside epoch 2 (375 steps), past the end-of-epoch stop check
    proc.send_signal(sig)
    assert proc.wait(timeout=limit) == 128 + sig
    err = proc.stderr.read().strip()
    assert len(err.splitlines()) == 1 and f"stopped by {sig.name} in epoch 2" in err
    progress = checkpoint.load(run).progress
    assert progress["epoch"] == 1 and 0 < progress["batch"] < 375  # mid-epoch

    resumed = subprocess.run(
        [sys.executable, "-m", "vaekit", "train", "--resume", str(run), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=limit,
    )
    assert resumed.returncode == 0, resumed.stderr
    a, b = checkpoint.load(tmp_path / "straight"), checkpoint.load(run)
    for key in a.model_state:
        assert torch.equal(a.model_state[key], b.model_state[key]), key
    # every record but its wall-clock fields: the interrupted epoch's losses come out the same
    assert untimed_metrics(run) == untimed_metrics(tmp_path / "straight")


def test_kill_9_while_writing_a_checkpoint_keeps_the_previous_one(small_config, tmp_path):
    small_config.train.epochs = 1
    run = fit(small_config, tmp_path / "run", log=lambda _: None, progress=False)
    before = checkpoint.load(run)
    writer = textwrap.dedent(f"""
        import os, time
        from vaekit import checkpoint
        ckpt = checkpoint.load({str(run)!r})
        ckpt.progress = {{"epoch": 99}}
        def stall(fd):
            print("writing", flush=True)
            time.sleep(60)
        os.fsync = stall  # the new bytes are written, not yet synced or renamed
        checkpoint.save(ckpt, {str(run)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait(timeout=30)
    assert list(run.glob(".checkpoint.safetensors.*.tmp")), "the killed writer left its temp file"
    after = checkpoint.load(run)
    assert after.progress == before.progress
    assert all(torch.equal(after.model_state[k], before.model_state[k]) for k in before.model_state)
    checkpoint.save(after, run)  # the next save clears the debris
    assert not list(run.glob(".checkpoint.safetensors.*.tmp"))


def _nan_on(steps: set[int]):
    """training_terms that returns NaN terms on the given (0-based) calls."""
    calls = {"n": 0}

    def faulty(*args, **kwargs):
        terms = training_terms(*args, **kwargs)
        if calls["n"] in steps:
            terms = {k: v * float("nan") for k, v in terms.items()}
        calls["n"] += 1
        return terms

    return faulty


def test_non_finite_steps_are_skipped_counted_and_leave_weights_alone(small_config, monkeypatch):
    state = build_state(small_config, (1, 28, 28))
    x = torch.rand(16, 1, 28, 28)
    monkeypatch.setattr(step_module, "training_terms", _nan_on({0}))
    before = {k: v.clone() for k, v in state.model.state_dict().items()}
    train_step(state, x)
    assert all(torch.equal(before[k], v) for k, v in state.model.state_dict().items())
    assert state.sums["skipped"].item() == 1 and state.sums["examples"].item() == 0
    assert all(s["step"].item() == 0 for s in state.optimizer.state.values())
    train_step(state, x)  # a good step goes through and resets the run of bad ones
    assert not torch.equal(before["fc1.weight"], state.model.fc1.weight)
    assert state.sums["examples"].item() == 16 and state.bad_in_a_row.item() == 0


def test_k_bad_steps_in_a_row_stop_the_run_and_keep_the_last_good_checkpoint(
    small_config, tmp_path, monkeypatch
):
    small_config.train.fast_path = False  # NaN is injected into the autograd step's terms
    small_config.train.epochs = 1
    small_config.train.max_bad_steps = 5
    run = fit(small_config, tmp_path / "run", log=lambda _: None, progress=False)
    good = checkpoint.load(run)
    steps_per_epoch = -(-2000 // 128)
    monkeypatch.setattr(step_module, "training_terms", _nan_on(set(range(3, 100))))
    with pytest.raises(TrainingDiverged, match="5 non-finite steps in a row in epoch 2") as info:
        fit(good.config, run, resume=True, resume_overrides={"epochs": 3}, log=lambda _: None)
    assert "last good checkpoint (epoch 1)" in str(info.value)
    kept = checkpoint.load(run)
    assert kept.progress == good.progress and steps_per_epoch > 3
    assert all(torch.equal(kept.model_state[k], good.model_state[k]) for k in good.model_state)


def test_isolated_bad_steps_do_not_stop_the_run(small_config, tmp_path, monkeypatch):
    """Runs of 4 bad steps, even across an epoch boundary, stay under a limit of 5."""
    small_config.train.fast_path = False  # NaN is injected into the autograd step's terms
    small_config.train.max_bad_steps = 5
    # 16 steps per epoch: 12-15 end epoch 1, step 16 is good, 17-19 are bad again.
    bad = {2, 5, 9, 12, 13, 14, 15, 17, 18, 19}
    monkeypatch.setattr(step_module, "training_terms", _nan_on(bad))
    run = fit(small_config, tmp_path / "run", log=lambda _: None, progress=False)
    skipped = [json.loads(line)["train_skipped"] for line in (run / "metrics.jsonl").open()]
    assert skipped == [7, 3]


def test_a_run_of_bad_steps_spanning_epochs_counts_as_one(small_config, tmp_path, monkeypatch):
    small_config.train.fast_path = False  # NaN is injected into the autograd step's terms
    small_config.train.max_bad_steps = 5
    monkeypatch.setattr(step_module, "training_terms", _nan_on({13, 14, 15, 16, 17}))
    with pytest.raises(TrainingDiverged, match="in epoch 2"):
        fit(small_config, tmp_path / "run", log=lambda _: None, progress=False)


def test_gradient_clipping_bounds_the_gradient_norm(small_config):
    small_config.train.max_grad_norm = 0.5
    state = build_state(small_config, (1, 28, 28))
    train_step(state, torch.rand(32, 1, 28, 28))
    grads = torch.cat([p.grad.flatten() for p in state.model.parameters()])
    assert grads.norm().item() == pytest.approx(0.5, rel=1e-4)  # raw norm is in the thousands


@pytest.mark.parametrize("scaled", [False, True], ids=["plain", "grad-scaler"])
def test_oversized_updates_are_skipped_and_counted(small_config, scaled):
    """--skip-grad-norm: a step whose gradient norm exceeds it leaves weights and Adam alone,
    also behind fp16's grad scaler (a CPU scaler stands in for the CUDA one here)."""
    state = build_state(small_config, (1, 28, 28))
    if scaled:
        state.scaler = torch.amp.GradScaler("cpu")
    x = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    state.config.train.skip_grad_norm = 1.0  # the raw norm of the summed loss is in the thousands
    before = {k: v.clone() for k, v in state.model.state_dict().items()}
    train_step(state, x)
    assert all(torch.equal(before[k], v) for k, v in state.model.state_dict().items())
    assert state.sums["skipped"].item() == 1 and state.bad_in_a_row.item() == 1
    assert all(s["step"].item() == 0 for s in state.optimizer.state.values())
    state.config.train.skip_grad_norm = 1e9  # far above any real norm: the step goes through
    train_step(state, x)
    assert not torch.equal(before["fc1.weight"], state.model.fc1.weight)
    assert state.sums["skipped"].item() == 1 and state.bad_in_a_row.item() == 0


def test_an_overflowing_scaled_step_is_skipped_and_the_scale_backs_off(small_config):
    """fp16's grad scaler: gradients that overflow at the current scale skip the update
    (weights, Adam's state untouched, the step counted) and halve the scale."""
    state = build_state(small_config, (1, 28, 28))
    state.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**127)  # gradients above 2 overflow
    x = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in state.model.state_dict().items()}
    train_step(state, x)
    assert all(torch.equal(before[k], v) for k, v in state.model.state_dict().items())
    assert state.sums["skipped"].item() == 1
    assert state.scaler.get_scale() == 2.0**126
    state.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    train_step(state, x)
    assert not torch.equal(before["fc1.weight"], state.model.fc1.weight)
    assert state.sums["skipped"].item() == 1


def test_signal_handlers_are_the_runs_while_it_trains_and_restored_after(
    small_config, tmp_path, monkeypatch
):
    """While the loop runs, SIGTERM and SIGINT go to its stop flag; afterwards the caller's
    own handlers are back (not just "some" handler: the very functions installed before),
    after a normal end and after a failure, and no write left a temp file behind."""
    small_config.train.fast_path = False  # the test wraps the autograd step (loop.train_step)
    small_config.train.epochs = 1
    calls = []

    def term(signum, frame):
        calls.append(signum)

    def intr(signum, frame):
        calls.append(signum)

    seen = []
    real_step = loop_module.train_step

    def watching_step(*args, **kwargs):
        seen.append((signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)))
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop_module, "train_step", watching_step)
    previous = signal.signal(signal.SIGTERM, term), signal.signal(signal.SIGINT, intr)
    try:
        run = fit(small_config, tmp_path / "run", log=lambda _: None, progress=False)
        assert signal.getsignal(signal.SIGTERM) is term and signal.getsignal(signal.SIGINT) is intr
        assert len(seen) == -(-2000 // 128)  # every step ran under the loop's handlers
        for during_term, during_int in seen:
            assert isinstance(during_term, StopRequest) and during_term is during_int
        assert not during_term  # no signal arrived: the flag stayed down
        assert not list(run.glob(".*.tmp"))  # atomic writes renamed their pid-named temp files

        def failing_step(*args, **kwargs):
            raise RuntimeError("boom")

        monkeypatch.setattr(loop_module, "train_step", failing_step)
        with pytest.raises(RuntimeError, match="boom"):
            fit(small_config, tmp_path / "failed", log=lambda _: None, progress=False)
        assert signal.getsignal(signal.SIGTERM) is term and signal.getsignal(signal.SIGINT) is intr
        assert calls == []  # the caller's handlers never saw a signal meant for the loop
    finally:
        for sig, handler in zip((signal.SIGTERM, signal.SIGINT), previous, strict=True):
            signal.signal(sig, handler)
