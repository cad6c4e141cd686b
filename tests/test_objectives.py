"""The objective against the seed's loss, Monte Carlo, and closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from vaekit.bench.seed_reference import loss_function as seed_loss_function
from vaekit.models.base import VAE, Latent, VAEOutput
from vaekit.objectives import (
    bernoulli_nll,
    gaussian_kl,
    gaussian_kl_per_dim,
    gaussian_log_prob,
    importance_weighted_log_likelihood,
    log_importance_weights,
    negative_elbo,
    standard_normal_log_prob,
)


def _batch(seed: int = 0, batch: int = 16, latent: int = 2):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, 28, 28, generator=g, dtype=torch.float64)  # grey levels, as the seed
    logits = 3 * torch.randn(batch, 1, 28, 28, generator=g, dtype=torch.float64)
    mu = torch.randn(batch, latent, generator=g, dtype=torch.float64)
    logvar = torch.randn(batch, latent, generator=g, dtype=torch.float64)
    return x, logits, mu, logvar


def _output(logits, mu, logvar, z=None) -> VAEOutput:
    return VAEOutput([Latent(mu if z is None else z, mu, logvar)], logits)


def test_negative_elbo_equals_seed_loss_function():
    """Summed over the batch, our logits form gives the seed's sigmoid + BCE + KL value."""
    x, logits, mu, logvar = _batch()
    ours = negative_elbo(x, _output(logits, mu, logvar))["loss"].sum()
    seed = seed_loss_function(torch.sigmoid(logits).flatten(1), x.flatten(1), mu, logvar)
    assert ours.item() == pytest.approx(seed.item(), rel=1e-6)


def test_terms_add_up_per_example():
    x, logits, mu, logvar = _batch(1)
    terms = negative_elbo(x, _output(logits, mu, logvar))
    assert terms["loss"].shape == (16,)
    torch.testing.assert_close(terms["loss"], terms["recon"] + terms["kl"])


def test_kl_matches_torch_distributions():
    _, _, mu, logvar = _batch(2, latent=5)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p)
    torch.testing.assert_close(gaussian_kl_per_dim(mu, logvar), expected)
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected.sum(1))


def test_analytic_kl_against_monte_carlo():
    """E_q[log q(z) - log p(z)] estimated from 200k samples agrees within 4 standard errors."""
    mu = torch.tensor([[0.7, -1.2, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[-0.5, 0.8, -2.0]], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    z = VAE.reparameterize(mu.expand(200_000, 3), logvar.expand(200_000, 3), g)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(0.0, 1.0)
    log_ratio = (q.log_prob(z) - p.log_prob(z)).sum(1)
    estimate, stderr = log_ratio.mean(), log_ratio.std() / math.sqrt(z.shape[0])
    assert abs(estimate - gaussian_kl(mu, logvar)[0]) < 4 * stderr


def test_kl_is_zero_at_the_prior():
    zeros = torch.zeros(4, 3)
    assert torch.equal(gaussian_kl(zeros, zeros), torch.zeros(4))


def test_bernoulli_nll_closed_form_and_stable_at_extremes():
    """-log p(x|z) = -[x log s + (1-x) log(1-s)]; finite where sigmoid saturates."""
    logits = torch.tensor([[0.0, 2.0, -3.0, 100.0, -100.0]], dtype=torch.float64)
    x = torch.tensor([[1.0, 0.25, 0.0, 0.0, 1.0]], dtype=torch.float64)
    s = torch.sigmoid(logits)
    expected = -(x * torch.log(s) + (1 - x) * torch.log1p(-s))[0, :3].sum() + 100 + 100
    got = bernoulli_nll(logits.view(1, 1, 1, 5), x.view(1, 1, 1, 5))
    assert torch.isfinite(got).all()
    assert got.item() == pytest.approx(expected.item(), rel=1e-9)


def test_gradients_flow_through_reparameterization():
    """d z / d mu = 1 and d z / d logvar = eps * sigma / 2: the trick's whole point."""
    mu = torch.tensor([[0.3, -0.4]], requires_grad=True)
    logvar = torch.tensor([[0.2, -1.0]], requires_grad=True)
    g = torch.Generator().manual_seed(3)
    z = VAE.reparameterize(mu, logvar, g)
    z.sum().backward()
    eps = (z.detach() - mu.detach()) / torch.exp(0.5 * logvar.detach())
    torch.testing.assert_close(mu.grad, torch.ones_like(mu))
    torch.testing.assert_close(logvar.grad, 0.5 * eps * torch.exp(0.5 * logvar.detach()))


# --------------------------------------------------------------- densities and the IWAE estimate


def test_gaussian_log_prob_matches_torch_distributions():
    g = torch.Generator().manual_seed(4)
    x, mean, logvar = (torch.randn(6, 3, generator=g, dtype=torch.float64) for _ in range(3))
    expected = torch.distributions.Normal(mean, torch.exp(0.5 * logvar)).log_prob(x).sum(1)
    torch.testing.assert_close(gaussian_log_prob(x, mean, logvar), expected)
    images = torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=g)
    per_image = gaussian_log_prob(images, torch.zeros(()), torch.zeros(()), event_dims=3)
    torch.testing.assert_close(per_image, standard_normal_log_prob(images.flatten(1)))


def test_standard_normal_log_prob_is_the_prior():
    z = torch.randn(5, 4, dtype=torch.float64)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    torch.testing.assert_close(standard_normal_log_prob(z), expected)


def test_importance_weighted_estimate_is_log_mean_exp():
    log_w = torch.tensor([[-1.0, -2.0, -0.5], [3.0, 3.0, 3.0]], dtype=torch.float64)
    expected = torch.log(torch.exp(log_w).mean(1))
    torch.testing.assert_close(importance_weighted_log_likelihood(log_w), expected)
    # k = 1: the single weight, which is the one-sample ELBO
    torch.testing.assert_close(importance_weighted_log_likelihood(log_w[:, :1]), log_w[:, 0])


def test_importance_weighted_estimate_is_stable_for_huge_weights():
    """Log weights of images sit near -100 to -1000 nats: exp underflows, logsumexp does not."""
    log_w = torch.tensor([[-1000.0, -1001.0], [800.0, 799.0]], dtype=torch.float64)
    got = importance_weighted_log_likelihood(log_w)
    expected = log_w[:, 0] + math.log((1 + math.exp(-1.0)) / 2)
    torch.testing.assert_close(got, expected)


def test_log_importance_weights_are_joint_minus_proposal():
    a, b, c = torch.tensor([-5.0]), torch.tensor([-2.0]), torch.tensor([-1.5])
    assert log_importance_weights(a, b, c).item() == pytest.approx(-5.5)


def test_bernoulli_nll_broadcasts_one_image_against_k_samples():
    """(B, k, C, H, W) logits against (B, 1, C, H, W) images: each sample scored on its image."""
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(3, 4, 1, 5, 5, generator=g, dtype=torch.float64)
    x = torch.rand(3, 1, 1, 5, 5, generator=g, dtype=torch.float64)
    got = bernoulli_nll(logits, x, event_dims=3)
    assert got.shape == (3, 4)
    for b in range(3):
        for i in range(4):
            torch.testing.assert_close(got[b, i], bernoulli_nll(logits[b, i : i + 1], x[b])[0])
