"""The conditional VAE (Sohn et al. 2015): asked for a digit, it draws that digit.

A conditional MLP trains a few hundred steps on MNIST; a logistic-regression classifier
trained here on real digits then reads its samples for each asked label."""

from __future__ import annotations

import pytest
import torch

from vaekit import pictures
from vaekit.config import model_config
from vaekit.data import load_split, to_unit
from vaekit.evaluation import estimate as ev
from vaekit.models import build_model


def _classifier(mnist_dir) -> torch.nn.Linear:
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


def test_conditional_mlp_generates_the_asked_digit(small_config, mnist_dir, tmp_path):
    from vaekit import api

    config = small_config
    config.model = model_config("mlp", condition="label", latent_dim=2)
    config.data.limit, config.train.epochs = 4000, 6  # 32 steps an epoch, ~190 in all
    model = api.load(api.train(config, tmp_path / "run", log=lambda _: None, progress=False))
    classifier = _classifier(mnist_dir)
    hits = 0
    for label in range(10):
        images = pictures.sample(model.cpu(), 50, seed=label, label=label)
        hits += (classifier(images.flatten(1)).argmax(1) == label).sum().item()
    assert hits / 500 > 0.5  # chance is 0.1


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
