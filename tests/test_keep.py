"""Checkpoints worth keeping: best.safetensors by the validation (else test) loss, every
N-th epoch's with --keep-every, and a validation split held out of the training split."""

from __future__ import annotations

import pytest
import torch

from vaekit import checkpoint
from vaekit.data import VALIDATION, load_data
from vaekit.errors import ConfigError
from vaekit.runfolder import RunFolder
from vaekit.training.loop import fit


def _quiet(_: str) -> None:
    return None


def test_validation_is_the_tail_of_the_training_split(small_config):
    small_config.data.limit = None
    whole = load_data(small_config.data, "train")
    small_config.data.validation = 500
    train, held = load_data(small_config.data, "train"), load_data(small_config.data, VALIDATION)
    assert len(train) == len(whole) - 500 and len(held) == 500
    assert torch.equal(torch.cat([train.images, held.images]), whole.images)


def test_best_follows_the_validation_loss_and_keep_every_copies(small_config, tmp_path):
    small_config.train.epochs, small_config.train.keep_every = 3, 2
    small_config.data.validation = 200
    lines: list[str] = []
    run = fit(small_config, tmp_path / "run", log=lines.append, progress=False)
    records = RunFolder(run).read_metrics()
    assert all("val_loss" in r and "test_loss" in r for r in records)
    best_epoch = min(records, key=lambda r: r["val_loss"])["epoch"]
    best = checkpoint.load(run / "best.safetensors")
    assert best.progress["epoch"] == best_epoch and best.optimizer_state is None
    assert best.progress["val_loss"] == min(r["val_loss"] for r in records)
    assert (run / "checkpoint-epoch-0002.safetensors").is_file()
    assert not (run / "checkpoint-epoch-0001.safetensors").exists()
    periodic = checkpoint.load(run / "checkpoint-epoch-0002.safetensors")
    assert periodic.progress["epoch"] == 2 and periodic.optimizer_state is not None
    assert "Validation loss:" in lines[0]
    assert lines[-1].endswith(
        f"holds epoch {best_epoch} (val_loss {best.progress['val_loss']:.4f})"
    )


def test_without_validation_best_says_it_was_chosen_on_the_test_set(small_config, tmp_path):
    small_config.train.epochs = 2
    lines: list[str] = []
    run = fit(small_config, tmp_path / "run", log=lines.append, progress=False)
    assert "chosen on the test set" in lines[-1] and "--validation N" in lines[-1]
    records = RunFolder(run).read_metrics()
    best = checkpoint.load(run / "best.safetensors")
    assert best.progress["test_loss"] == min(r["test_loss"] for r in records)


def test_validation_must_leave_training_examples(small_config, tmp_path):
    small_config.data.limit = None
    small_config.data.validation = 60000
    with pytest.raises(ConfigError, match="--validation 60000 must lie between 1 and 59999"):
        fit(small_config, tmp_path / "run", log=_quiet, progress=False)
