"""The conditional VAE (Sohn et al. 2015): asked for a digit, it draws that digit.

Conditional models (the MLP, and the hierarchical one whose top-down path takes the
label) train a few hundred steps on MNIST; a logistic-regression classifier trained
here on real digits then reads their samples for each asked label. The pictures, the
gmm sampler and the commands take the label too."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vaekit import checkpoint, pictures
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


def _config(mnist_dir, name: str, epochs: int, **sizes: int) -> RunConfig:
    config = RunConfig()
    config.data.data_dir, config.data.download = str(mnist_dir), False
    config.data.limit, config.train.epochs = 4000, epochs  # 32 steps an epoch
    config.train.pictures = config.train.plots = False
    config.train.device = "cpu"
    config.model = model_config(name, condition="label", **sizes)
    return config


@pytest.fixture(scope="module")
def trained(mnist_dir, tmp_path_factory) -> dict:
    """A conditional MLP run of ~190 steps."""
    from vaekit import api

    folder = tmp_path_factory.mktemp("conditional") / "mlp"
    config = _config(mnist_dir, "mlp", 6, latent_dim=2)
    return {"mlp": api.train(config, folder, log=lambda _: None, progress=False)}


@pytest.fixture(scope="module")
def trained_hvae(mnist_dir, tmp_path_factory) -> Path:
    """A conditional hvae run of ~480 steps (its residual cells start near the identity
    and learn the label's digit more slowly than the MLP)."""
    from vaekit import api

    folder = tmp_path_factory.mktemp("conditional") / "hvae"
    config = _config(mnist_dir, "hvae", 15, latent_dim=2, hidden_dim=64, groups=2)
    return api.train(config, folder, log=lambda _: None, progress=False)


def _untrained(folder: Path, name: str) -> Path:
    """A checkpoint of an untrained conditional `name` model (weights scaled up, so that
    the label's effect is far above float error): enough to compare two computations."""
    config = RunConfig()
    config.model = model_config(name, condition="label", **FAMILIES[name])
    torch.manual_seed(0)
    model = build_model(config.model, (1, 28, 28))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3) if p.dim() > 1 else p.normal_(0, 0.5)
    folder.mkdir(parents=True, exist_ok=True)
    return checkpoint.save(checkpoint.Checkpoint(config, (1, 28, 28), model.state_dict()), folder)


def _hits(classifier, images: torch.Tensor, label: int) -> int:
    return (classifier(images.flatten(1)).argmax(1) == label).sum().item()


def _asked_digit_share(classifier, model) -> float:
    hits = sum(
        _hits(classifier, pictures.sample(model, 50, seed=label, label=label), label)
        for label in range(10)
    )
    return hits / 500


def test_conditional_model_generates_the_asked_digit(trained, classifier):
    from vaekit import api

    assert _asked_digit_share(classifier, api.load(trained["mlp"], "cpu")) > 0.5  # chance: 0.1


@pytest.mark.slow
def test_conditional_hvae_generates_the_asked_digit(trained_hvae, classifier):
    """The label through the hierarchical model's top-down path (measured: 0.56)."""
    from vaekit import api

    assert _asked_digit_share(classifier, api.load(trained_hvae, "cpu")) > 0.4


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


def test_one_row_per_class_is_each_label_decoded_from_the_prior(tmp_path):
    from vaekit import api

    model = api.load(_untrained(tmp_path / "run", "hvae"), "cpu")
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
    run = str(trained["mlp"])
    common = ["--device", "cpu"]
    assert main(["sample", run, "-n", "20", "-o", str(tmp_path / "rows.png"), *common]) == 0
    assert "One row per class" in capsys.readouterr().out
    assert main(["sample", run, "--label", "7", "-o", str(tmp_path / "s.png"), *common]) == 0
    data = ["--data-dir", str(mnist_dir)]
    argv = ["reconstruct", run, "-n", "8", "-o", str(tmp_path / "r.png"), *data, *common]
    assert main(argv) == 0
    from PIL import Image

    assert Image.open(tmp_path / "rows.png").size == (2 * (2 * 30 + 2), 2 * (10 * 30 + 2))
    assert (tmp_path / "s.png").is_file() and (tmp_path / "r.png").is_file()


def test_api_encode_and_decode_take_a_conditional_models_labels(trained):
    import vaekit

    model = vaekit.load(trained["mlp"], "cpu")
    x, y = torch.rand(3, 1, 28, 28), torch.tensor([1, 4, 4])
    mu, _ = vaekit.encode(model, x, labels=y)
    with torch.no_grad():
        torch.testing.assert_close(mu, model.encode(x, y)[0])
        torch.testing.assert_close(
            vaekit.decode(model, mu, [1, 4, 4]), torch.sigmoid(model.decode(mu, y))
        )
    with pytest.raises(ConfigError, match="needs the labels"):
        vaekit.decode(model, mu)
    with pytest.raises(ConfigError, match="integers in 0"):
        vaekit.encode(model, x, labels=[1, 2, 10])


@pytest.mark.parametrize("name", ["mlp", "hvae"])
def test_onnx_export_of_a_conditional_model_takes_the_labels(name, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import vaekit
    from vaekit.export import export_model

    source = _untrained(tmp_path / "run", name)
    export_model(source, tmp_path / "onnx", "onnx")
    model = vaekit.load(source, "cpu")
    encoder = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "encoder.onnx"))
    decoder = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "decoder.onnx"))
    x, y = torch.rand(5, 1, 28, 28), torch.tensor([0, 2, 9, 9, 5])
    mu, _ = encoder.run(["mu", "logvar"], {"x": x.numpy(), "y": y.numpy()})
    _, mean = decoder.run(["params", "mean"], {"z": mu, "y": y.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(mu), model.encode(x, y)[0], atol=1e-4, rtol=0)
        want = torch.sigmoid(model.decode(torch.from_numpy(mu), y))
    torch.testing.assert_close(torch.from_numpy(mean), want, atol=1e-4, rtol=0)
