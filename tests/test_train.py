"""Training: the loss falls, runs repeat, and a resumed run is bit-identical."""

from __future__ import annotations

import json

import pytest
import torch

from vaekit import checkpoint
from vaekit.errors import ConfigError
from vaekit.training.loop import fit


def _weights(run_dir):
    return checkpoint.load(run_dir).model_state


def _quiet(*_):
    return None


def test_short_run_loss_falls_and_writes_the_run_folder(small_config, tmp_path):
    small_config.train.epochs = 3
    run = fit(small_config, tmp_path / "run", log=_quiet, progress=False)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    train_losses = [r["train_loss"] for r in records]
    assert train_losses[0] > train_losses[1] > train_losses[2]
    assert records[-1]["test_loss"] < 0.9 * records[0]["train_loss"]
    for r in records:
        assert r["train_loss"] == pytest.approx(r["train_recon"] + r["train_kl"], rel=1e-5)
    assert json.loads((run / "config.json").read_text()) == small_config.to_dict()


def test_metrics_record_the_learning_rate_each_epoch_trained_at(small_config, tmp_path):
    small_config.train.epochs = 3
    small_config.train.lr_schedule, small_config.train.lr_final = "exponential", 1e-4
    run = fit(small_config, tmp_path / "run", log=_quiet, progress=False)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in records] == pytest.approx([1e-3, 10**-3.5, 1e-4], rel=1e-12)
    assert checkpoint.load(run).optimizer_state["param_groups"][0]["lr"] == pytest.approx(1e-4)


def test_same_seed_same_weights(small_config, tmp_path):
    small_config.train.epochs = 1
    a = _weights(fit(small_config, tmp_path / "a", log=_quiet, progress=False))
    b = _weights(fit(small_config, tmp_path / "b", log=_quiet, progress=False))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_is_bitwise_identical_to_an_uninterrupted_run(
    small_config, tmp_path, untimed_metrics
):
    """2 epochs straight == 1 epoch, stop, resume for 1 more (weights, optimiser, metrics)."""
    straight = fit(small_config, tmp_path / "straight", log=_quiet, progress=False)
    small_config.train.epochs = 1
    resumed = fit(small_config, tmp_path / "resumed", log=_quiet, progress=False)
    fit(
        small_config,
        resumed,
        resume=True,
        resume_overrides={"epochs": 2},
        log=_quiet,
        progress=False,
    )
    a, b = checkpoint.load(straight), checkpoint.load(resumed)
    assert a.progress == b.progress == {"epoch": 2, "batch": 0}
    for key in a.model_state:
        assert torch.equal(a.model_state[key], b.model_state[key]), key
    for index, state in a.optimizer_state["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b.optimizer_state["state"][index][key]), (index, key)
    # every field of every epoch's record, losses and counts included, but the wall time
    records = untimed_metrics(straight)
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"lr", "train_loss", "train_kl", "train_skipped", "test_loss", "test_recon"} <= set(
        records[1]
    )
    assert records == untimed_metrics(resumed)


def test_a_run_folder_is_not_overwritten(small_config, tmp_path):
    small_config.train.epochs = 1
    fit(small_config, tmp_path / "run", log=_quiet, progress=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        fit(small_config, tmp_path / "run", log=_quiet, progress=False)


def test_resume_refuses_changes_that_define_the_run(small_config, tmp_path):
    small_config.train.epochs = 1
    run = fit(small_config, tmp_path / "run", log=_quiet, progress=False)
    with pytest.raises(ConfigError, match="cannot change when resuming"):
        fit(small_config, run, resume=True, resume_overrides={"latent_dim": 8}, log=_quiet)
    with pytest.raises(ConfigError, match="not a vaekit run folder"):
        fit(small_config, tmp_path, resume=True, log=_quiet)


def test_seed_printout_format(small_config, tmp_path):
    small_config.train.epochs = 1
    lines = []
    fit(small_config, tmp_path / "run", log=lines.append, progress=False)
    assert lines[0].startswith("Epoch 1, Loss: ")
    assert ", Test loss: " in lines[0]
