"""Model registry and architectures; the mlp model is the seed's, weight for weight."""

from __future__ import annotations

import pytest
import torch

from vaekit.bench import seed_reference
from vaekit.config import ModelConfig
from vaekit.errors import ConfigError
from vaekit.models import MODELS, build_model
from vaekit.objectives import negative_elbo

MNIST_SHAPE = (1, 28, 28)


def test_registry_lists_the_architectures():
    assert {"mlp", "conv"} <= set(MODELS)
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        build_model(ModelConfig(name="nope"), MNIST_SHAPE)


def test_mlp_is_the_seed_model_with_the_same_initial_weights():
    """Same layers, names and creation order: equal seeds give equal weights."""
    torch.manual_seed(123)
    seed_model = seed_reference.VAE()
    torch.manual_seed(123)
    ours = build_model(ModelConfig(), MNIST_SHAPE)
    theirs = seed_model.state_dict()
    assert list(ours.state_dict()) == list(theirs)
    for name, tensor in ours.state_dict().items():
        assert torch.equal(tensor, theirs[name]), name


def test_mlp_loss_equals_the_seed_pipeline_on_the_same_noise():
    """With the seed's weights and the same eps, our forward + objective gives its loss."""
    torch.manual_seed(0)
    seed_model = seed_reference.VAE()
    ours = build_model(ModelConfig(), MNIST_SHAPE)
    ours.load_state_dict(seed_model.state_dict())
    x = torch.rand(32, 1, 28, 28)
    torch.manual_seed(7)
    recon, mu, logvar = seed_model(x.flatten(1))
    expected = seed_reference.loss_function(recon, x.flatten(1), mu, logvar)
    torch.manual_seed(7)
    out = ours(x)
    got = negative_elbo(x, out)["loss"].sum()
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_shapes_and_configurable_sizes(name, shape):
    config = ModelConfig(name=name, latent_dim=7, hidden_dim=64, channels=8)
    model = build_model(config, shape)
    x = torch.rand(5, *shape)
    out = model(x)
    assert out.mu.shape == out.logvar.shape == out.z.shape == (5, 7)
    assert out.logits.shape == (5, *shape)
    assert model.decode(model.prior_sample(3)).shape == (3, *shape)


def test_conv_rejects_sides_not_divisible_by_four():
    with pytest.raises(ConfigError, match="divisible by 4"):
        build_model(ModelConfig(name="conv"), (1, 30, 30))


def test_decoder_returns_logits_not_probabilities():
    """Logits range over the reals; a sigmoid inside the decoder would cap them to [0, 1]."""
    model = build_model(ModelConfig(), MNIST_SHAPE)
    with torch.no_grad():
        model.fc4.bias.fill_(-5.0)
        logits = model.decode(torch.zeros(4, 2))
    assert logits.max() < 0
