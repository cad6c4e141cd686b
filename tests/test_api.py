"""The Python API's run lifecycle: `vaekit.train`, a stop, `vaekit.resume`."""

from __future__ import annotations

import json
import signal

import pytest
import torch

import vaekit
from vaekit import checkpoint
from vaekit.errors import ConfigError, TrainingInterrupted
from vaekit.training import loop as loop_module

STOP_AFTER = 5  # steps into epoch 1 (16 steps of 128 on 2,000 images)


def _quiet(_: str) -> None:
    return None


def _stop_mid_epoch(config, run_dir, monkeypatch) -> None:
    """Train `config` into run_dir, a SIGTERM arriving during step STOP_AFTER (as from a
    scheduler): the loop's handler takes it, the run saves mid-epoch and stops."""
    real_step, steps = loop_module.train_step, []

    def step_then_signal(*args, **kwargs):
        loss = real_step(*args, **kwargs)
        steps.append(1)
        if len(steps) == STOP_AFTER:
            signal.raise_signal(signal.SIGTERM)
        return loss

    with monkeypatch.context() as patch:
        patch.setattr(loop_module, "train_step", step_then_signal)
        with pytest.raises(
            TrainingInterrupted, match=f"SIGTERM in epoch 1 after batch {STOP_AFTER}"
        ):
            vaekit.train(config, run_dir, log=_quiet, progress=False)


def test_resume_continues_a_stopped_run_to_the_uninterrupted_weights_and_pictures(
    small_config, tmp_path, monkeypatch, untimed_metrics
):
    """2 epochs straight == 1 epoch stopped mid-way by SIGTERM, then vaekit.resume(run,
    epochs=2): the same weights, Adam state and metrics bit for bit (CPU), and the same
    samples.png and reconstructions.png, drawn once the resumed run ends."""
    small_config.train.fast_path = False  # the SIGTERM comes from inside loop.train_step
    small_config.train.pictures = True  # plots stay off: matplotlib is slow to import
    straight = vaekit.train(small_config, tmp_path / "straight", log=_quiet, progress=False)

    small_config.train.epochs = 1
    stopped = tmp_path / "stopped"
    _stop_mid_epoch(small_config, stopped, monkeypatch)
    assert checkpoint.load(stopped).progress["epoch"] == 0
    assert checkpoint.load(stopped).progress["batch"] == STOP_AFTER
    assert not (stopped / "samples.png").exists()  # a stopped run draws nothing yet

    lines = []
    run = vaekit.resume(stopped, epochs=2, log=lines.append, progress=False)
    assert run == stopped
    assert lines[0] == f"Resuming {stopped} at epoch 1, batch {STOP_AFTER + 1} of 2"
    assert [line.split(",")[0] for line in lines[1:3]] == ["Epoch 1", "Epoch 2"]  # rest of 1
    assert lines[3].startswith(f"{stopped / 'best.safetensors'} holds epoch")
    a, b = checkpoint.load(straight), checkpoint.load(run)
    assert a.progress == b.progress == {"epoch": 2, "batch": 0}
    assert b.config.train.epochs == 2 and b.config == a.config
    for key in a.model_state:
        assert torch.equal(a.model_state[key], b.model_state[key]), key
    for index, state in a.optimizer_state["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b.optimizer_state["state"][index][key]), (index, key)
    assert untimed_metrics(run) == untimed_metrics(straight)
    assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 2
    for picture in ("samples.png", "reconstructions.png"):
        assert (run / picture).read_bytes() == (straight / picture).read_bytes(), picture


def test_resume_refuses_a_changed_option_that_defines_the_run(small_config, tmp_path, monkeypatch):
    """Changing lr or latent_dim on resume is refused before anything is written; the same
    value of such an option, or a resumable option (epochs, pictures), is accepted."""
    small_config.train.fast_path = False  # the SIGTERM comes from inside loop.train_step
    small_config.train.epochs, small_config.train.pictures = 1, True
    run = tmp_path / "run"
    _stop_mid_epoch(small_config, run, monkeypatch)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(ConfigError, match="--lr cannot change when resuming"):
        vaekit.resume(run, epochs=2, lr=small_config.train.lr * 2, log=_quiet, progress=False)
    with pytest.raises(ConfigError, match="--latent-dim cannot change when resuming"):
        vaekit.resume(run, latent_dim=small_config.model.latent_dim + 1, log=_quiet)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    vaekit.resume(run, lr=small_config.train.lr, pictures=False, log=_quiet, progress=False)
    assert checkpoint.load(run).progress == {"epoch": 1, "batch": 0}
    assert not (run / "samples.png").exists()  # the run asked for them; the resume did not
