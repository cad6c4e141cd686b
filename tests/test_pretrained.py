"""Weights shipped in the package: offline sampling, their stored figures, export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import vaekit
from vaekit import checkpoint, pretrained
from vaekit.cli import main
from vaekit.config import RunConfig


def test_mnist_seed_ships_small_weights_only_with_its_figures():
    assert "mnist-seed" in pretrained.names()
    path = pretrained.path("mnist-seed")
    assert path.stat().st_size < 5 * 2**20
    ckpt = checkpoint.load(path)
    assert ckpt.optimizer_state is None and ckpt.rng_state == {}
    assert ckpt.config.data.data_dir is None  # no folder of the machine that trained it
    assert ckpt.config.model == RunConfig().model  # the seed's architecture
    figures = pretrained.figures("mnist-seed")
    for protocol in ("none", "dynamic"):
        entry = figures[protocol]
        assert entry["k"] == 5000 and entry["active_units"] == 2
        # the importance-weighted bound is tighter than the ELBO, by a few nats for this model
        assert 0 < entry["neg_elbo_nats"] - entry["nll_nats"] < 10


def test_sample_pretrained_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAEKIT_DATA_DIR", str(tmp_path / "nothing-here"))
    out = tmp_path / "samples.png"
    assert main(["sample", "--pretrained", "mnist-seed", "-o", str(out), "-n", "16"]) == 0
    image = np.asarray(Image.open(out))
    assert image.shape == (2 * (2 * 30 + 2), 2 * (8 * 30 + 2))
    assert image.std() > 20, "a blank grid: the weights did not load"


def test_load_pretrained_decodes_like_the_file(tmp_path):
    model = vaekit.load_pretrained("mnist-seed", device="cpu")
    again = vaekit.load(pretrained.path("mnist-seed"), device="cpu")
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(vaekit.decode(model, z), vaekit.decode(again, z))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["sample"], "one of them"),
        (["sample", "some-run", "--pretrained", "mnist-seed"], "one of them"),
        (["sample", "--pretrained", "nope"], "no pretrained model 'nope'"),
    ],
)
def test_model_source_errors(args, fragment, capsys):
    assert main(args) == 2
    assert fragment in capsys.readouterr().err


def test_export_keeps_the_weights_and_the_figures(small_config, tmp_path):
    small_config.train.epochs = 1
    run = vaekit.train(small_config, tmp_path / "run", progress=False, log=lambda _: None)
    config = vaekit.EvalConfig(k=10, limit=50, fid=False, device="cpu")
    result = vaekit.evaluate_model(run, config, progress=False)  # writes the run's eval.json
    out = tmp_path / "shared.safetensors"
    assert main(["export", str(run), "-o", str(out), "--eval", "eval.json"]) == 0
    original, exported = checkpoint.load(run), checkpoint.load(out)
    assert exported.optimizer_state is None
    figures = exported.progress["figures"]["none"]
    assert figures["nll_nats"] == result.iwae.nll_nats and figures["k"] == 10
    assert figures["active_units"] == result.latent.active_units
    for key, value in original.model_state.items():
        assert torch.equal(exported.model_state[key], value)
    assert out.stat().st_size < (run / checkpoint.FILENAME).stat().st_size / 2


def test_half_export_loads_into_float32(small_config, tmp_path):
    small_config.train.epochs = 1
    run = vaekit.train(small_config, tmp_path / "run", progress=False, log=lambda _: None)
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    assert main(["export", str(run), "-o", str(full)]) == 0
    assert main(["export", str(run), "-o", str(half), "--half"]) == 0
    assert half.stat().st_size < 0.6 * full.stat().st_size
    model = vaekit.load(half, device="cpu")
    original = checkpoint.load(run).model_state
    for name, value in model.state_dict().items():
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, original[name].half().float(), rtol=0, atol=0)


@pytest.mark.parametrize("name", pretrained.names())
def test_every_shipped_model_samples_and_reaches_its_stored_elbo(name, mnist_dir):
    """The stored -ELBO is recomputed on the test set from the shipped weights, exactly as
    `vaekit evaluate` measured it (same binarisation draw, noise and batches)."""
    from vaekit.data import evaluation_images, load_split
    from vaekit.evaluation.estimate import elbo_sums

    model = vaekit.load_pretrained(name, device="cpu")
    assert vaekit.sample(model, 4).shape == (4, 1, 28, 28)
    test = load_split("mnist", "test", mnist_dir, False)
    for protocol, figures in pretrained.figures(name).items():
        images = evaluation_images(test.images, protocol, 0)
        sums = elbo_sums(model, images, batch_size=100, seed=0)
        got = sums["loss"].item() / len(images)
        assert got == pytest.approx(figures["neg_elbo_nats"], abs=0.01), protocol
        assert figures["nll_nats"] < figures["neg_elbo_nats"]
