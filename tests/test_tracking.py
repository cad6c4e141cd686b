"""Experiment trackers: what TensorBoard and MLflow hold equals what metrics.jsonl holds."""

from __future__ import annotations

import sys
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vaekit
from vaekit import checkpoint
from vaekit.cli import main
from vaekit.runfolder import MLRUNS, TENSORBOARD, RunFolder
from vaekit.tracking.measures import Probe
from vaekit.tracking.tensorboard import tag


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory, mnist_dir):
    """`vaekit train --log tensorboard,mlflow` for 1 epoch, then a resume to 2 epochs."""
    run = tmp_path_factory.mktemp("tracking") / "run"
    flags = ["--data-dir", str(mnist_dir), "--no-download", "--limit", "1000", "--no-plots"]
    first = ["train", *flags, "--epochs", "1", "--log", "tensorboard,mlflow", "--out", str(run)]
    assert main([*first, "--device", "cpu", "--no-progress"]) == 0
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    return run


def _events(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / TENSORBOARD), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def test_tensorboard_scalars_equal_metrics_jsonl_across_the_resume(logged_run):
    records = RunFolder(logged_run).read_metrics()
    assert [r["epoch"] for r in records] == [1, 2]
    events = _events(logged_run)
    for key in ("train_loss", "train_recon", "train_kl", "test_loss", "test_kl", "lr"):
        logged = [(e.step, e.value) for e in events.Scalars(tag(key))]
        assert logged == [(r["epoch"], np.float32(r[key])) for r in records], key
    assert [e.value for e in events.Scalars("train/skipped")] == [0, 0]
    assert tag("train_loss") == "train/loss"


def test_tensorboard_probe_kl_and_sample_grid_are_the_final_models(logged_run):
    model = vaekit.load(logged_run, device="cpu")
    probe = Probe(model.run_config)
    kl = _events(logged_run).Scalars("probe/kl_group_0")
    assert [e.step for e in kl] == [1, 2]
    assert kl[-1].value == pytest.approx(probe.kl_per_group(model)[0], rel=1e-6)
    assert kl[0].value != kl[-1].value  # measured each epoch, not once
    image = _events(logged_run).Images("samples")[-1]

    logged = np.asarray(Image.open(BytesIO(image.encoded_image_string)).convert("L"))
    np.testing.assert_array_equal(logged, probe.sample_grid(model))


def test_mlflow_holds_params_metrics_and_artifacts_of_one_continued_run(logged_run, tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(logged_run / MLRUNS).resolve().as_uri())
    experiment = client.get_experiment_by_name("vaekit")
    (run,) = client.search_runs([experiment.experiment_id])  # the resume continued it
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["train.lr"] == "0.001" and params["model.name"] == "mlp"
    assert params["train.epochs"] == "1" and run.data.tags["resumed.train.epochs"] == "2"
    records = RunFolder(logged_run).read_metrics()
    for key in ("train_loss", "test_loss", "test_kl", "lr", "train_skipped"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [(m.step, m.value) for m in history] == [(r["epoch"], r[key]) for r in records]
    assert len(client.get_metric_history(run.info.run_id, "probe_kl_group_0")) == 2
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"samples.png", "reconstructions.png", "checkpoint.safetensors"} <= names
    got = client.download_artifacts(run.info.run_id, "checkpoint.safetensors", str(tmp_path))
    assert Path(got).read_bytes() == checkpoint.resolve_path(logged_run).read_bytes()


@pytest.mark.parametrize(("name", "module"), [("tensorboard", "tensorboard"), ("mlflow", "mlflow")])
def test_a_missing_tracker_package_is_one_line_naming_the_extra(
    name, module, tmp_path, mnist_dir, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    run = tmp_path / "run"
    argv = ["train", "--data-dir", str(mnist_dir), "--limit", "100", "--out", str(run)]
    assert main([*argv, "--log", name]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"vaekit: error: --log {name} needs the {module} package: pip install 'vaekit[{name}]'"
    )
    assert not run.exists()


def test_an_unknown_tracker_is_refused(tmp_path, capsys):
    assert main(["train", "--log", "tensorboard,wandb", "--out", str(tmp_path / "r")]) == 2
    assert "unknown --log 'wandb'; known: mlflow, tensorboard" in capsys.readouterr().err
