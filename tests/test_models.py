"""Model registry and architectures; the mlp model is the seed's, weight for weight."""

from __future__ import annotations

import pytest
import torch

from vaekit.bench import seed_reference
from vaekit.config import ConvConfig, HVAEConfig, MLPConfig, family_class, model_config
from vaekit.config.families import family_fields
from vaekit.config.registry import LIKELIHOOD, MODEL
from vaekit.errors import ConfigError
from vaekit.likelihoods import TABLE_LIKELIHOODS
from vaekit.models import MODELS, build_model
from vaekit.objectives import (
    gaussian_kl,
    latent_kl,
    latent_log_ratio,
    log_weights,
    negative_elbo,
    training_terms,
)

MNIST_SHAPE = (1, 28, 28)


def _config(name: str, **values):
    """Family `name`'s config with the `values` it has fields for (the rest are others')."""
    own = family_fields(name)
    return model_config(name, **{key: value for key, value in values.items() if key in own})


# The families with Gaussian latent groups; the VQ families (discrete codes) are tested in
# tests/test_vq.py.
GAUSSIAN = sorted(name for name, network in MODELS.items() if network.gaussian_latents)


def test_registry_lists_the_architectures():
    assert {"mlp", "conv"} <= set(MODELS)
    assert set(MODELS) == set(MODEL.names())  # a network for every declared family, no more
    bad = MLPConfig()
    bad.name = "nope"
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        build_model(bad, MNIST_SHAPE)


def test_build_model_refuses_a_config_of_another_family():
    """An MLPConfig renamed to conv has no channels: a ConfigError, not an AttributeError."""
    renamed = MLPConfig()
    renamed.name = "conv"
    with pytest.raises(ConfigError, match="does not match MLPConfig"):
        build_model(renamed, MNIST_SHAPE)


@pytest.mark.parametrize("name", GAUSSIAN)
def test_each_network_reads_only_its_family_fields(name):
    """Built from its family's class, which has no other family's fields, every network
    builds: no network reads a field its family lacks."""
    config = family_class(name)()
    assert type(config) is MODEL.spec(name)
    assert build_model(config, MNIST_SHAPE).latent_dim == config.latent_dim


def test_mlp_is_the_seed_model_with_the_same_initial_weights():
    """Same layers, names and creation order: equal seeds give equal weights."""
    torch.manual_seed(123)
    seed_model = seed_reference.VAE()
    torch.manual_seed(123)
    ours = build_model(MLPConfig(), MNIST_SHAPE)
    theirs = seed_model.state_dict()
    assert list(ours.state_dict()) == list(theirs)
    for name, tensor in ours.state_dict().items():
        assert torch.equal(tensor, theirs[name]), name


def test_mlp_loss_equals_the_seed_pipeline_on_the_same_noise():
    """With the seed's weights and the same eps, our forward + objective gives its loss."""
    torch.manual_seed(0)
    seed_model = seed_reference.VAE()
    ours = build_model(MLPConfig(), MNIST_SHAPE)
    ours.load_state_dict(seed_model.state_dict())
    x = torch.rand(32, 1, 28, 28)
    torch.manual_seed(7)
    recon, mu, logvar = seed_model(x.flatten(1))
    expected = seed_reference.loss_function(recon, x.flatten(1), mu, logvar)
    torch.manual_seed(7)
    out = ours(x)
    got = negative_elbo(x, out)["loss"].sum()
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("name", GAUSSIAN)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_shapes_and_configurable_sizes(name, shape):
    config = _config(name, latent_dim=7, hidden_dim=64, channels=8)
    model = build_model(config, shape)
    x = torch.rand(5, *shape)
    out = model(x)
    assert out.mu.shape == out.logvar.shape == out.z.shape == (5, 7)
    assert out.logits.shape == (5, *shape)
    assert model.decode(model.prior_sample(3)).shape == (3, *shape)


def test_hvae_reads_groups_and_units_per_group():
    model = build_model(HVAEConfig(latent_dim=3, hidden_dim=16, groups=2), MNIST_SHAPE)
    assert (model.groups, model.latent_dim, model.noise_dim) == (2, 3, 6)


def test_conv_rejects_sides_not_divisible_by_four():
    with pytest.raises(ConfigError, match="divisible by 4"):
        build_model(ConvConfig(), (1, 30, 30))


def test_decoder_returns_logits_not_probabilities():
    """Logits range over the reals; a sigmoid inside the decoder would cap them to [0, 1]."""
    model = build_model(MLPConfig(), MNIST_SHAPE)
    with torch.no_grad():
        model.fc4.bias.fill_(-5.0)
        logits = model.decode(torch.zeros(4, 2))
    assert logits.max() < 0


# ------------------------------------------------ every architecture: training and consistency

SMALL = {"latent_dim": 4, "hidden_dim": 64, "channels": 8, "groups": 2}


def _small(name: str, likelihood: str = "bernoulli", shape=MNIST_SHAPE, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(_config(name, likelihood=likelihood, **SMALL), shape)


def _discs(n: int = 64, seed: int = 0) -> torch.Tensor:
    """n binary 28x28 images: Bernoulli draws of soft discs of random centre and radius."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 28), torch.linspace(-1, 1, 28), indexing="ij")
    cx, cy = (torch.rand(2, n, 1, 1, generator=g) - 0.5) * 0.8
    radius = 0.35 + 0.2 * torch.rand(n, 1, 1, generator=g)
    disc = torch.sigmoid(12 * (radius - ((xs - cx) ** 2 + (ys - cy) ** 2).sqrt()))
    return torch.bernoulli(0.05 + 0.9 * disc, generator=g).unsqueeze(1)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", GAUSSIAN)
def test_every_architecture_learns_a_fixed_batch(name, one_thread):
    """30 Adam steps on 64 binarised discs: the mean -ELBO of the last 5 steps is at least 15%
    below that of the first 5 (from ~550 nats, near 784 log 2, to ~330-440)."""
    model = _small(name)
    x = _discs()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(30):
        terms = training_terms(x, model(x, generator=g), model.likelihood.nll)
        optimizer.zero_grad()
        terms["objective"].backward()
        optimizer.step()
        losses.append(terms["loss"].mean().item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert 450 < first < 620, losses[:5]  # untrained: close to 784 log 2 = 543 nats
    assert last < 0.85 * first, (first, last)


@pytest.mark.parametrize("name", GAUSSIAN)
def test_k_samples_and_one_sample_agree(name):
    """Forward with k gives (B, k, ...) tensors; with k = 1 and the same noise it is the plain
    forward pass, and log w = -recon + sum of the groups' log p(z) - log q(z)."""
    model = _small(name).double()
    x = _discs(5, seed=2).double()
    g = torch.Generator().manual_seed(3)
    k = 3
    noise_k = model.noise(5, k, g).double()
    out = model(x, noise=noise_k, k=k)
    assert out.params.shape == (5, k, *model.output_shape)
    for latent in out.latents:
        assert latent.z.shape[:2] == (5, k)
        assert latent.q_mu.shape[0] == 5 and latent.q_mu.dim() == 3
    log_w = log_weights(x, out)
    assert log_w.shape == (5, k)
    for j in range(k):  # sample j of each image is the plain pass on that image's noise j
        single = model(x, noise=noise_k[:, j])
        torch.testing.assert_close(out.params[:, j], single.params)
        torch.testing.assert_close(log_w[:, j], log_weights(x, single))

    noise = model.noise(5, generator=g).double()
    plain, one = model(x, noise=noise), model(x, noise=noise[:, None], k=1)
    torch.testing.assert_close(one.params[:, 0], plain.params)
    assert len(one.latents) == len(plain.latents)
    for a, b in zip(one.latents, plain.latents, strict=True):
        torch.testing.assert_close(a.z[:, 0], b.z)
    expected = -negative_elbo(x, plain)["recon"] + sum(latent_log_ratio(la) for la in plain.latents)
    torch.testing.assert_close(log_weights(x, one)[:, 0], expected)
    iwae = training_terms(x, one, objective="iwae")
    torch.testing.assert_close(iwae["loss"], -expected)


def test_hvae_kl_is_closed_form_per_group_and_matches_its_samples():
    """Each group's KL is KL(q(z_g|x, z_<g) || p(z_g|z_<g)) in closed form, >= 0; averaged over
    samples it equals the mean of log q - log p at those samples (4 standard errors)."""
    model = _small("hvae").double()
    x = _discs(2, seed=4).double()
    k = 4000
    with torch.no_grad():
        out = model(x, generator=torch.Generator().manual_seed(5), k=k)
    assert len(out.latents) == SMALL["groups"]
    assert out.latents[0].p_mu is None and out.latents[1].p_mu is not None
    for latent in out.latents:
        assert latent.analytic_kl
        kl = latent_kl(latent)
        assert kl.shape == (2, k)
        assert (kl >= 0).all() and (kl > 0).any()
        if latent.p_mu is not None:
            q = torch.distributions.Normal(latent.q_mu, torch.exp(0.5 * latent.q_logvar))
            p = torch.distributions.Normal(latent.p_mu, torch.exp(0.5 * latent.p_logvar))
            torch.testing.assert_close(kl, torch.distributions.kl_divergence(q, p).sum(-1))
        # paired difference of estimate and closed form, per image: zero in expectation
        diff = -latent_log_ratio(latent) - kl
        stderr = diff.std(dim=1) / k**0.5
        assert (diff.mean(dim=1).abs() < 4 * stderr).all()


def test_iwae_2l_lower_group_is_estimated_from_its_sample():
    model = _small("iwae-2l").double()
    x = _discs(4, seed=6).double()
    out = model(x, generator=torch.Generator().manual_seed(7))
    top, lower = out.latents
    assert top.analytic_kl and top.p_mu is None and top.z.shape == (4, SMALL["latent_dim"])
    assert not lower.analytic_kl and lower.z.shape == (4, 2 * SMALL["latent_dim"])
    torch.testing.assert_close(latent_kl(lower), -latent_log_ratio(lower))
    torch.testing.assert_close(latent_kl(top), gaussian_kl(top.q_mu, top.q_logvar))


@pytest.mark.parametrize(
    "likelihood", [n for n in LIKELIHOOD.names() if n not in TABLE_LIKELIHOODS]
)
@pytest.mark.parametrize("name", GAUSSIAN)
def test_generate_and_reconstruct_give_the_likelihoods_parameters(name, likelihood):
    """(n, P*C, H, W) for every model and likelihood, P = 2 for gaussian-learned; the
    likelihood's mean of them is an image in [0, 1] and scores finitely."""
    shape = (3, 32, 32)
    model = _small(name, likelihood, shape)
    p = 2 if likelihood == "gaussian-learned" else 1
    x = torch.rand(4, *shape)
    with torch.no_grad():
        generated = model.generate(5, torch.Generator().manual_seed(0))
        reconstructed = model.reconstruct(x)
        out = model(x)
    assert generated.shape == (5, p * 3, 32, 32)
    assert reconstructed.shape == out.params.shape == (4, p * 3, 32, 32)
    mean = model.likelihood.mean(reconstructed)
    assert mean.shape == x.shape and ((mean >= 0) & (mean <= 1)).all()
    assert torch.isfinite(training_terms(x, out, model.likelihood.nll)["objective"])
