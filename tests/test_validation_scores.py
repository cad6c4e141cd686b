"""`vaekit score --split validation`: choices (a likelihood, a detector's settings) made
on the training examples a run held out, every class, never on its test split."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import vaekit
from vaekit.cli import main
from vaekit.config import DataConfig, EvalConfig, RunConfig, model_config
from vaekit.data import load_data, load_split, to_unit
from vaekit.evaluation.estimate import importance_weighted_estimates

HELD = 300


def held_out_model(mnist_dir: Path, classes: str = "3") -> vaekit.VAE:
    """The seed model, as though trained on `classes` with the last HELD images held out."""
    model = vaekit.load_pretrained("mnist-seed", "cpu")
    data = dataclasses.replace(
        model.run_config.data, data_dir=str(mnist_dir), validation=HELD, classes=classes
    )
    model.run_config = dataclasses.replace(model.run_config, data=data)
    return model


def test_validation_scores_are_the_held_out_images_of_every_class(mnist_dir, tmp_path):
    """The validation split is MNIST's last HELD training images, all ten digits though the
    run trained on 3s alone; scored as a split or passed as data, the same numbers, and
    those of the estimator on the raw images."""
    model = held_out_model(mnist_dir)
    config = EvalConfig(k=5, batch_size=64, fid=False, device="cpu")
    scores = vaekit.score_data(model, split="validation", config=config, progress=False)
    raw = load_split("mnist", "train", mnist_dir, download=False)
    last = raw.take(slice(len(raw) - HELD, None))
    assert scores.labels == [str(v) for v in last.labels.tolist()]
    assert set(scores.labels) == {str(d) for d in range(10)}
    array = tmp_path / "held.npy"
    np.save(array, last.images[:, 0].numpy())
    passed = vaekit.score_data(model, data=f"npy:{array}", config=config, progress=False)
    for name in ("neg_log_px", "neg_elbo", "recon", "kl", "squared_error"):
        np.testing.assert_array_equal(getattr(scores, name), getattr(passed, name))
    log_px = importance_weighted_estimates(model, to_unit(last.images), config, False)
    np.testing.assert_array_equal(scores.neg_log_px, (-log_px).numpy())
    train = load_data(model.run_config.data, "train")  # what such a run trains on
    threes = int((raw.labels == 3).sum())
    assert set(train.labels.tolist()) == {3}
    assert len(train) == threes - scores.labels.count("3")


def test_a_run_without_validation_has_no_validation_split(mnist_dir, capsys):
    model = vaekit.load_pretrained("mnist-seed", "cpu")
    with pytest.raises(vaekit.ConfigError, match="the validation split: there is none"):
        vaekit.score_data(model, split="validation", data_dir=mnist_dir, progress=False)
    argv = ["score", "--pretrained", "mnist-seed", "--split", "validation"]
    assert main([*argv, "--data-dir", str(mnist_dir), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "there is none" in err and len(err.splitlines()) == 1


def test_cli_scores_a_runs_validation_split(mnist_dir, tmp_path):
    """A run trained with --classes 1 --validation 120: `vaekit score --split validation`
    writes the API's numbers for the 120 held-out images, every class."""
    config = RunConfig(model=model_config("mlp", latent_dim=2, hidden_dim=16))
    config.data = DataConfig(
        data_dir=str(mnist_dir), download=False, classes="1", validation=120, limit=200
    )
    config.train.epochs, config.train.device = 1, "cpu"
    config.train.pictures = config.train.plots = False
    run = vaekit.train(config, tmp_path / "run", log=lambda line: None, progress=False)
    eval_config = EvalConfig(k=4, batch_size=50, fid=False, device="cpu")
    api = vaekit.score_data(run, split="validation", config=eval_config, progress=False)
    out = tmp_path / "v.csv"
    argv = ["score", str(run), "--split", "validation", "-o", str(out), "-k", "4"]
    threads = str(torch.get_num_threads())  # matrix products round with the thread count
    argv += ["--batch-size", "50", "--no-progress", "--device", "cpu", "--threads", threads]
    assert main(argv) == 0
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 120 and len({r["label"] for r in rows}) > 5
    written = np.array([r["neg_log_px_k4"] for r in rows], dtype=np.float32)
    np.testing.assert_array_equal(written, api.neg_log_px)


def test_a_tables_transform_leaves_its_validation_rows_out(tmp_path):
    """Standardisation statistics come from the rows the model trains on, so the held-out
    rows are as unseen as the test rows."""
    rng = np.random.default_rng(3)
    values = rng.normal(10, 4, size=(200, 2))
    path = tmp_path / "t.csv"
    lines = ["a,b"] + [f"{x:.4f},{y:.4f}" for x, y in values]
    path.write_text("\n".join(lines) + "\n")
    data = DataConfig(dataset=f"csv:{path}", validation=50)
    train = load_data(data, "train")
    held = load_data(data, "validation", transform=train.transform)
    assert len(train) == 130 and len(held) == 50  # 20 test rows, then 50 held out of 180
    assert not set(train.rows.tolist()) & set(held.rows.tolist())
    rows = train.rows.numpy()
    a = train.transform.numeric[0]
    assert a.mean == pytest.approx(values[rows, 0].mean(), rel=1e-6)
    assert a.std == pytest.approx(values[rows, 0].std(), rel=1e-5)  # numpy's, ddof 0


def test_explore_refuses_a_table_run_in_one_line(tmp_path, capsys):
    """The explorer decodes images in the browser; a table's run says what to use instead."""
    path = tmp_path / "t.csv"
    rows = np.random.default_rng(4).normal(size=(60, 3))
    path.write_text("a,b,c\n" + "\n".join(",".join(f"{v:.3f}" for v in r) for r in rows) + "\n")
    config = RunConfig(model=model_config("mlp", latent_dim=2, hidden_dim=8, likelihood="mixed"))
    config.data = DataConfig(dataset=f"csv:{path}")
    config.train.epochs, config.train.device = 1, "cpu"
    config.train.pictures = config.train.plots = False
    run = vaekit.train(config, tmp_path / "run", log=lambda line: None, progress=False)
    assert main(["explore", str(run), "-o", str(tmp_path / "page"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "explore decodes images" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "page").exists()
