"""The conditional VAE (Sohn et al. 2015): asked for a digit, it draws that digit.

Conditional models (the MLP, and the hierarchical one whose top-down path takes the
label) train a few hundred steps on MNIST; a logistic-regression classifier trained
here on real digits then reads their samples for each asked label. The pictures, the
gmm sampler and the commands take the label too."""

from __future__ import annotations

import pytest
import torch

from vaekit import pictures
from vaekit.cli import main
from vaekit.config import RunConfig, model_config
from vaekit.data import load_split, to_unit
from vaekit.errors import ConfigError
from vaekit.evaluation import estimate as ev
from vaekit.models import build_model

FAMILIES = {  # every family that takes --condition label, at a small size
    "mlp": {"hidden_dim": 16},
    "conv": {"hidden_dim": 16, "channels": 4},
    "resconv": {"hidden_dim": 16, "channels": 4},
    "iwae-1l": {"hidden_dim": 16},
    "hvae": {"hidden_dim": 16, "groups": 2},
}


@pytest.fixture(scope="module")
def classifier(mnist_dir) -> torch.nn.Linear:
    train = load_split("mnist", "train", mnist_dir, False).subset(5000)
    x, y = to_unit(train.images).flatten(1), train.labels
    torch.manual_seed(0)
    net = torch.nn.Linear(784, 10)
    optimiser = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(100):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimiser.step()
    return net


def _config(mnist_dir, name: str, **sizes: int) -> RunConfig:
    config = RunConfig()
    config.data.data_dir, config.data.download = str(mnist_dir), False
    config.data.limit, config.train.epochs = 4000, 6  # 32 steps an epoch, ~190 in all
    config.train.pictures = config.train.plots = False
    config.train.device = "cpu"
    config.model = model_config(name, condition="label", **sizes)
    return config


@pytest.fixture(scope="module")
def trained(mnist_dir, tmp_path_factory) -> dict:
    """Conditional MLP and hvae runs, each ~190 steps."""
    from vaekit import api

    base = tmp_path_factory.mktemp("conditional")
    sizes = {"mlp": {"latent_dim": 2}, "hvae": {"latent_dim": 2, "hidden_dim": 64, "groups": 2}}
    return {
        name: api.train(
            _config(mnist_dir, name, **kw), base / name, log=lambda _: None, progress=False
        )
        for name, kw in sizes.items()
    }


def _hits(classifier, images: torch.Tensor, label: int) -> int:
    return (classifier(images.flatten(1)).argmax(1) == label).sum().item()


@pytest.mark.parametrize("name", ["mlp", "hvae"])
def test_conditional_model_generates_the_asked_digit(trained, classifier, name):
    from vaekit import api

    model = api.load(trained[name], "cpu")
    hits = sum(
        _hits(classifier, pictures.sample(model, 50, seed=label, label=label), label)
        for label in range(10)
    )
    assert hits / 500 > 0.5  # chance is 0.1


def test_gmm_sampler_of_a_conditional_model_draws_the_asked_digit(trained, classifier, mnist_dir):
    from vaekit import api

    model = api.load(trained["mlp"], "cpu")
    hits = sum(
        _hits(classifier, api.sample_gmm(model, 50, label, 3, mnist_dir, label=label), label)
        for label in range(10)
    )
    assert hits / 500 > 0.5
    with pytest.raises(ConfigError, match="needs --label"):
        api.sample_gmm(model, 4, data_dir=mnist_dir)


def test_one_row_per_class_is_each_label_decoded_from_the_prior(trained):
    from vaekit import api

    model = api.load(trained["hvae"], "cpu")
    rows = api.class_samples(model, per_class=3, seed=5)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():  # the reference: ancestral draws, labels 0,0,0,1,1,1,...
        y = torch.arange(10).repeat_interleave(3)
        want = torch.sigmoid(model.generate(30, generator, y=y))
    torch.testing.assert_close(rows, want)
    with torch.no_grad():  # and a row is its label's: another label changes the images
        other = torch.sigmoid(model.generate(30, torch.Generator().manual_seed(5), y=y.flip(0)))
    assert (rows - other).abs().mean() > 0.05


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_conditional_family_reads_the_label_in_encoder_and_decoder(name):
    torch.manual_seed(0)
    model = build_model(model_config(name, condition="label", **FAMILIES[name]), (1, 28, 28))
    x, y = torch.rand(4, 1, 28, 28).round(), torch.tensor([0, 3, 3, 9])
    z = torch.randn(4, model.latent_dim)
    with torch.no_grad():
        assert not torch.allclose(model.encode(x, y)[0], model.encode(x, y.flip(0))[0])
        assert not torch.allclose(model.decode(z, y), model.decode(z, y.flip(0)))
        # the same label in a batch gives the same decode as alone: no mixing across rows
        torch.testing.assert_close(model.decode(z, y)[1:2], model.decode(z[1:2], y[1:2]))
    plain = build_model(model_config(name, **FAMILIES[name]), (1, 28, 28))
    extra = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra > 0 and model.classes == 10 and plain.classes == 0


def test_conditional_model_scores_given_the_label():
    torch.manual_seed(0)
    model = build_model(model_config("mlp", condition="label", hidden_dim=16), (1, 28, 28))
    x, y = torch.rand(4, 1, 28, 28).round(), torch.tensor([0, 3, 3, 9])
    generator = torch.Generator().manual_seed(0)
    given = ev.importance_weighted_log_px(model, x, 8, generator, y=y)
    other = ev.importance_weighted_log_px(
        model, x, 8, torch.Generator().manual_seed(0), y=y.flip(0)
    )
    assert given.shape == (4,) and not torch.allclose(given, other)
    assert model.generate(5, y=torch.arange(5)).shape == (5, 1, 28, 28)
    with pytest.raises(Exception, match="conditional model"):
        pictures.sample(build_model(model_config("mlp"), (1, 28, 28)), 2, label=3)
    with pytest.raises(ConfigError, match="does not combine"):
        model_config("hvae", condition="label", prior="vamp").validate()


def test_commands_take_the_label(trained, tmp_path, mnist_dir, capsys):
    run = str(trained["hvae"])
    common = ["--device", "cpu"]
    assert main(["sample", run, "-n", "20", "-o", str(tmp_path / "rows.png"), *common]) == 0
    assert "One row per class" in capsys.readouterr().out
    assert main(["sample", run, "--label", "7", "-o", str(tmp_path / "s.png"), *common]) == 0
    data = ["--data-dir", str(mnist_dir)]
    argv = ["reconstruct", run, "-n", "8", "-o", str(tmp_path / "r.png"), *data, *common]
    assert main(argv) == 0
    from PIL import Image

    assert Image.open(tmp_path / "rows.png").size == (2 * (2 * 30 + 2), 2 * (10 * 30 + 2))
