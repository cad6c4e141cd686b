"""Results out: `vaekit encode` and `vaekit score` against the API and `evaluate`,
`--classes`, and a table run from training to sampled rows."""

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
from vaekit.data import load_data, to_unit
from vaekit.evaluation.encoded import encode_split
from vaekit.evaluation.estimate import importance_weighted_estimates
from vaekit.models import build_model


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def seed_model():
    return vaekit.load_pretrained("mnist-seed", "cpu")


def test_score_repeats_evaluate_per_image(seed_model, mnist_dir, tmp_path):
    """Same seed, same draws: score's -log p(x) is evaluate's per-image estimate, its
    -ELBO averages to evaluate's, and the CLI writes the API's numbers."""
    config = EvalConfig(k=7, batch_size=16, limit=40, fid=False, device="cpu")
    scores = vaekit.score_data(seed_model, config=config, data_dir=mnist_dir, progress=False)
    test = load_data(DataConfig(data_dir=str(mnist_dir), limit=40), "test")
    log_px = importance_weighted_estimates(seed_model, to_unit(test.images), config, False)
    np.testing.assert_array_equal(scores.neg_log_px, (-log_px).numpy())
    result = vaekit.evaluate_model(seed_model, config, mnist_dir, progress=False)
    assert scores.neg_log_px.mean() == pytest.approx(result.iwae.nll_nats, rel=1e-6)
    assert scores.neg_elbo.mean() == pytest.approx(result.neg_elbo.nats, rel=1e-5)
    np.testing.assert_allclose(scores.neg_elbo, scores.recon + scores.kl, rtol=1e-5)
    assert scores.labels == [str(v) for v in test.labels.tolist()]
    out = tmp_path / "s.csv"
    argv = ["score", "--pretrained", "mnist-seed", "--data-dir", str(mnist_dir), "-o", str(out)]
    argv += ["-k", "7", "--batch-size", "16", "--limit", "40", "--top", "8", "--no-progress"]
    threads = str(torch.get_num_threads())  # matrix products round with the thread count
    assert main([*argv, "--device", "cpu", "--threads", threads]) == 0
    rows = read_csv(out)
    written = np.array([r["neg_log_px_k7"] for r in rows], dtype=np.float32)
    np.testing.assert_array_equal(written, scores.neg_log_px)  # the shortest exact text
    assert (tmp_path / "s-most-anomalous.png").is_file()
    top = scores.most_anomalous(3)
    assert scores.neg_log_px[top].tolist() == sorted(scores.neg_log_px, reverse=True)[:3]


def test_encode_writes_what_the_api_encodes(seed_model, mnist_dir, tmp_path):
    out = tmp_path / "z.npz"
    argv = ["encode", "--pretrained", "mnist-seed", "--data-dir", str(mnist_dir)]
    assert main([*argv, "--classes", "3", "-o", str(out), "--device", "cpu"]) == 0
    saved = np.load(out, allow_pickle=False)
    test = load_data(DataConfig(data_dir=str(mnist_dir), classes="3"), "test")
    mu, logvar = vaekit.encode(seed_model, test.images)
    np.testing.assert_allclose(saved["mu"], mu.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(saved["logvar"], logvar.numpy(), rtol=1e-5, atol=1e-6)
    assert set(saved["label"].tolist()) == {"3"} and saved["groups"].tolist() == [2]
    api = vaekit.encode_data(seed_model, classes="3", output=tmp_path / "z.csv", data_dir=mnist_dir)
    rows = read_csv(tmp_path / "z.csv")
    assert len(rows) == len(api.mu) == 1010 and list(rows[0])[:4] == [
        "index",
        "label",
        "mu_0",
        "mu_1",
    ]
    np.testing.assert_array_equal(api.mu, saved["mu"])


def test_encode_keeps_every_latent_group(mnist_dir):
    config = RunConfig(model=model_config("hvae", groups=3, latent_dim=4, hidden_dim=16))
    model = build_model(config.model, (1, 28, 28)).eval()
    test = load_data(DataConfig(data_dir=str(mnist_dir), limit=10), "test")
    encoding = encode_split(model, test, batch_size=4)
    assert encoding.groups == [4, 4, 4] and encoding.mu.shape == encoding.logvar.shape == (10, 12)
    assert encoding.unit_names()[:5] == ["0_0", "0_1", "0_2", "0_3", "1_0"]
    mu, _ = model.encode(to_unit(test.images))  # the top group: encode's
    np.testing.assert_allclose(encoding.mu[:, :4], mu.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_classes_filter_both_splits_by_name_or_number(mnist_dir):
    data = DataConfig(data_dir=str(mnist_dir), classes="0,3")
    train, test = load_data(data, "train"), load_data(data, "test")
    assert set(train.labels.tolist()) == set(test.labels.tolist()) == {0, 3}
    assert len(test) == 980 + 1010
    with pytest.raises(vaekit.DataError, match="--classes 12: mnist has no such label"):
        load_data(dataclasses.replace(data, classes="12"), "test")


def write_table(path: Path, n: int = 240) -> Path:
    rng = np.random.default_rng(1)
    a = rng.normal(50, 10, n)
    with open(path, "w") as handle:
        handle.write("height,weight,children,colour,group\n")
        for i in range(n):
            colour = ("red", "green", "blue")[i % 3]
            weight = a[i] * 1.5 + rng.normal(0, 3)
            handle.write(f"{a[i]:.2f},{weight:.2f},{i % 4},{colour},{'ab'[i % 2]}\n")
    return path


def test_a_table_run_trains_samples_rows_and_scores(tmp_path, mnist_dir):
    table = write_table(tmp_path / "people.csv")
    config = RunConfig(model=model_config("mlp", latent_dim=2, hidden_dim=16, likelihood="mixed"))
    config.data = DataConfig(dataset=f"csv:{table}", label_column="group", classes="a")
    config.train.epochs, config.train.device = 2, "cpu"
    run = vaekit.train(config, tmp_path / "run", log=lambda line: None, progress=False)
    names = sorted(p.name for p in run.iterdir())
    assert "samples.csv" in names and "latent_scatter.png" in names
    assert "samples.png" not in names and "latent_manifold.png" not in names
    assert "people.csv" in (run / "report.html").read_text()
    model = vaekit.load(run, "cpu")
    assert model.data_transform.label_names == ("a", "b") and model.image_shape == (1, 1, 6)
    best = vaekit.load(run / "best.safetensors", "cpu")  # the best epoch carries the transform too
    assert best.data_transform.to_dict() == model.data_transform.to_dict()
    samples = tmp_path / "s.csv"
    assert main(["sample", str(run), "-n", "50", "-o", str(samples), "--device", "cpu"]) == 0
    rows = read_csv(samples)
    assert list(rows[0]) == ["height", "weight", "children", "colour"] and len(rows) == 50
    assert {r["colour"] for r in rows} <= {"red", "green", "blue"}
    assert all(r["children"].lstrip("-").isdigit() for r in rows)  # whole numbers stay whole
    heights = np.array([float(r["height"]) for r in rows])
    assert 20 < heights.mean() < 80  # back in the original units, not standardised ones
    scores = vaekit.score_data(run, classes=None, config=EvalConfig(k=5, fid=False, device="cpu"))
    assert len(scores) == 24 and set(scores.labels) == {"a", "b"}  # the test split, all classes
    assert np.isfinite(scores.neg_log_px).all() and scores.rows is not None
    with pytest.raises(vaekit.ConfigError, match="a table model's samples are rows"):
        vaekit.write_samples(model, 4, output=tmp_path / "s.png")
