"""The objective against the seed's loss, Monte Carlo, and closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from vaekit.bench.seed_reference import loss_function as seed_loss_function
from vaekit.models.base import VAE, Latent, VAEOutput
from vaekit.objectives import (
    bernoulli_nll,
    free_bits_kl,
    gaussian_kl,
    gaussian_kl_between,
    gaussian_kl_per_dim,
    gaussian_log_prob,
    importance_weighted_log_likelihood,
    latent_kl,
    log_importance_weights,
    log_weights,
    negative_elbo,
    standard_normal_log_prob,
    training_terms,
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


# ----------------------------------------------------- training objectives over an output


def _random_output(seed: int = 0, batch: int = 6, k: int | None = None, groups: int = 2):
    """A hand-made output: binary images, decoder logits and `groups` latent groups (the
    second with a prior N(p_mu, p_var)), with z drawn from q; (B, k, ...) when k is given."""
    g = torch.Generator().manual_seed(seed)
    lead = (batch,) if k is None else (batch, k)
    x = (torch.rand(batch, 1, 4, 4, generator=g, dtype=torch.float64) > 0.5).double()
    logits = 2 * torch.randn(*lead, 1, 4, 4, generator=g, dtype=torch.float64)
    latents = []
    for group in range(groups):
        mu, logvar = (torch.randn(batch, 1, 3, generator=g, dtype=torch.float64) for _ in "ml")
        if k is None:
            mu, logvar = mu[:, 0], logvar[:, 0]
        eps = torch.randn(*lead, 3, generator=g, dtype=torch.float64)
        z = mu + eps * torch.exp(0.5 * logvar)
        prior = (None, None)
        if group:
            prior = tuple(torch.randn(*lead, 3, generator=g, dtype=torch.float64) for _ in "ml")
        latents.append(Latent(z, mu, logvar, *prior))
    return x, VAEOutput(latents, logits)


def _log_w_reference(x, out) -> torch.Tensor:
    """log p(x|z) + sum_g [log p(z_g) - log q(z_g)] through torch.distributions."""
    target = x if out.params.dim() == x.dim() else x[:, None]
    log_px = torch.distributions.Bernoulli(logits=out.params).log_prob(target).sum((-3, -2, -1))
    log_ratio = 0.0
    for latent in out.latents:
        q = torch.distributions.Normal(latent.q_mu, torch.exp(0.5 * latent.q_logvar))
        if latent.p_mu is None:
            p = torch.distributions.Normal(0.0, 1.0)
        else:
            p = torch.distributions.Normal(latent.p_mu, torch.exp(0.5 * latent.p_logvar))
        log_ratio = log_ratio + (p.log_prob(latent.z) - q.log_prob(latent.z)).sum(-1)
    return log_px + log_ratio


def _first_sample(latent: Latent, analytic_kl: bool) -> Latent:
    """The group at its first sample, without the k dimension."""

    def first(t):
        return None if t is None else t[:, 0]

    parts = (latent.z, latent.q_mu, latent.q_logvar, latent.p_mu, latent.p_logvar)
    return Latent(*(first(t) for t in parts), analytic_kl=analytic_kl)


def test_iwae_terms_with_one_sample_are_the_sampled_elbo():
    """k = 1: -L_1 = -log w, the ELBO with its KL estimated at the same sample; and the elbo
    objective on the same sample, with every KL estimated from it, gives the same number."""
    x, out = _random_output(1, k=1)
    terms = training_terms(x, out, objective="iwae")
    expected = -_log_w_reference(x, out)[:, 0]
    torch.testing.assert_close(terms["loss"], expected)
    torch.testing.assert_close(terms["loss"], -log_weights(x, out)[:, 0])
    torch.testing.assert_close(terms["objective"], expected.sum())
    torch.testing.assert_close(terms["recon"] + terms["kl"], terms["loss"])
    # the elbo path on the sample without its k dimension, KL from the sample
    first = [_first_sample(latent, analytic_kl=False) for latent in out.latents]
    elbo = training_terms(x, VAEOutput(first, out.params[:, 0]), objective="elbo")
    torch.testing.assert_close(elbo["loss"], expected)
    torch.testing.assert_close(elbo["objective"], expected.sum())


def test_iwae_terms_are_log_mean_exp_of_the_weights():
    x, out = _random_output(2, k=7)
    terms = training_terms(x, out, objective="iwae")
    log_w = _log_w_reference(x, out)
    assert log_w.shape == (6, 7)
    expected = -(torch.logsumexp(log_w, dim=1) - math.log(7))
    torch.testing.assert_close(terms["loss"], expected)
    torch.testing.assert_close(terms["objective"], expected.sum())
    # recon and kl are the sample means, and the bound is tighter than their sum (Jensen)
    recon = -torch.distributions.Bernoulli(logits=out.params).log_prob(x[:, None]).sum((2, 3, 4))
    torch.testing.assert_close(terms["recon"], recon.mean(1))
    torch.testing.assert_close(terms["kl"], (-log_w - recon).mean(1))
    assert (terms["loss"] < terms["recon"] + terms["kl"]).all()


def test_elbo_objective_with_beta_one_is_the_summed_negative_elbo():
    x, out = _random_output(3)
    terms = training_terms(x, out, kl_weight=1.0, free_bits=0.0)
    reference = negative_elbo(x, out)
    torch.testing.assert_close(terms["objective"], reference["loss"].sum())
    for key in ("loss", "recon", "kl"):
        torch.testing.assert_close(terms[key], reference[key])


@pytest.mark.parametrize("beta", [0.0, 0.25, 4.0])
def test_kl_weight_scales_only_the_kl(beta):
    x, out = _random_output(4)
    terms = training_terms(x, out, kl_weight=beta)
    reference = negative_elbo(x, out)
    expected = reference["recon"].sum() + beta * reference["kl"].sum()
    torch.testing.assert_close(terms["objective"], expected)
    torch.testing.assert_close(terms["loss"], reference["loss"])  # reported unweighted


def test_free_bits_floor_groups_below_lambda_and_stop_their_gradient():
    """Group 0 sits near the prior (batch-mean KL < lambda), group 1 far from it: the first
    contributes exactly batch * lambda with zero gradient, the second its KL and gradient.
    The floor is on the batch mean, not per example: group 0 holds one example above lambda
    and group 1 one below, and neither changes that."""
    batch, lam = 5, 1.5
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(batch, 1, 3, 3, generator=g, dtype=torch.float64) > 0.5).double()
    logits = torch.randn(batch, 1, 3, 3, generator=g, dtype=torch.float64)
    near = [0.1 * torch.randn(batch, 4, generator=g, dtype=torch.float64) for _ in "ml"]
    far = [2 + torch.randn(batch, 4, generator=g, dtype=torch.float64) for _ in "ml"]
    near[0][0] = 1.2  # one example of group 0 far from the prior
    far[0][-1], far[1][-1] = 0.1, 0.0  # one example of group 1 near it
    params = [t.requires_grad_() for t in near + far]
    latents = [Latent(params[0], params[0], params[1]), Latent(params[2], params[2], params[3])]
    out = VAEOutput(latents, logits)
    kl_near, kl_far = gaussian_kl(*near), gaussian_kl(*far)
    assert kl_near.mean() < lam < kl_far.mean()
    assert kl_near[0] > lam and kl_far[-1] < lam
    terms = training_terms(x, out, free_bits=lam)
    recon = bernoulli_nll(logits, x)
    expected = recon.sum() + batch * lam + kl_far.sum()
    torch.testing.assert_close(terms["objective"], expected)
    torch.testing.assert_close(terms["kl"], kl_near + kl_far)  # reported KL is not floored
    terms["objective"].backward()
    assert torch.equal(params[0].grad, torch.zeros_like(params[0]))
    assert torch.equal(params[1].grad, torch.zeros_like(params[1]))
    mu, logvar = (t.detach().requires_grad_() for t in params[2:])
    gaussian_kl(mu, logvar).sum().backward()
    torch.testing.assert_close(params[2].grad, mu.grad)
    torch.testing.assert_close(params[3].grad, logvar.grad)
    # the floor is on the batch mean, so it composes with the KL weight
    weighted = training_terms(x, out, kl_weight=0.5, free_bits=lam)["objective"]
    torch.testing.assert_close(weighted, recon.sum() + 0.5 * (batch * lam + kl_far.sum()))
    # free_bits_kl itself, groups below and above
    floored = free_bits_kl([kl_near, kl_far], lam)
    torch.testing.assert_close(floored, batch * lam + kl_far.sum())


def test_gaussian_kl_between_matches_torch_and_the_standard_prior_case():
    g = torch.Generator().manual_seed(6)
    q_mu, q_logvar, p_mu, p_logvar = (
        torch.randn(8, 5, generator=g, dtype=torch.float64) for _ in range(4)
    )
    q = torch.distributions.Normal(q_mu, torch.exp(0.5 * q_logvar))
    p = torch.distributions.Normal(p_mu, torch.exp(0.5 * p_logvar))
    expected = torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(gaussian_kl_between(q_mu, q_logvar, p_mu, p_logvar), expected)
    zeros = torch.zeros_like(q_mu)
    torch.testing.assert_close(
        gaussian_kl_between(q_mu, q_logvar, zeros, zeros), gaussian_kl(q_mu, q_logvar)
    )
    assert torch.equal(gaussian_kl_between(q_mu, q_logvar, q_mu, q_logvar), torch.zeros(8).double())


@pytest.mark.parametrize("with_prior", [False, True])
def test_sampled_kl_is_the_log_ratio_and_averages_to_the_closed_form(with_prior):
    """analytic_kl False: log q(z) - log p(z) at the sample; over 200k samples its mean is the
    closed form within 4 standard errors."""
    n = 200_000
    q_mu = torch.tensor([0.7, -1.2, 0.0], dtype=torch.float64)
    q_logvar = torch.tensor([-0.5, 0.8, -2.0], dtype=torch.float64)
    p_mu = torch.tensor([0.3, 0.5, -1.0], dtype=torch.float64) if with_prior else None
    p_logvar = torch.tensor([0.4, -0.3, 1.0], dtype=torch.float64) if with_prior else None
    g = torch.Generator().manual_seed(7)
    z = VAE.reparameterize(q_mu.expand(n, 3), q_logvar.expand(n, 3), g)

    def expand(t):
        return None if t is None else t.expand(n, 3)

    sampled = Latent(z, expand(q_mu), expand(q_logvar), expand(p_mu), expand(p_logvar), False)
    analytic = Latent(z, expand(q_mu), expand(q_logvar), expand(p_mu), expand(p_logvar), True)
    estimate = latent_kl(sampled)
    q = torch.distributions.Normal(q_mu, torch.exp(0.5 * q_logvar))
    p = (
        torch.distributions.Normal(p_mu, torch.exp(0.5 * p_logvar))
        if with_prior
        else torch.distributions.Normal(0.0, 1.0)
    )
    torch.testing.assert_close(estimate, (q.log_prob(z) - p.log_prob(z)).sum(-1))
    closed = latent_kl(analytic)
    torch.testing.assert_close(closed[0], torch.distributions.kl_divergence(q, p).sum())
    stderr = estimate.std() / math.sqrt(n)
    assert abs(estimate.mean() - closed[0]) < 4 * stderr
