"""The hierarchical models' generative semantics against hand computations.

The top-down HVAE (`models/hvae.py`, the mnist-hvae preset's network) and the
two-layer IWAE (`models/iwae.py`, the mnist-iwae-2l preset's network) are
recomputed here from their own weights with torch.nn.functional alone: what a
prior sample, a decode of a chosen latent, a forward pass and the objective's
log densities must give. In float64, so agreement is to round-off.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vaekit import presets
from vaekit.models import build_model
from vaekit.objectives import latent_kl, log_weights, negative_elbo, training_terms

MNIST_SHAPE = (1, 28, 28)
LOG_2PI = math.log(2 * math.pi)


def _preset_model(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(presets.load(name).model, MNIST_SHAPE).double().eval()


def _images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.rand(n, *MNIST_SHAPE, generator=g, dtype=torch.float64))


def _linear(layer, x):
    return F.linear(x, layer.weight, layer.bias)


def _log_normal(z, mu, logvar):
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension, written out."""
    return (-0.5 * (LOG_2PI + logvar + (z - mu) ** 2 / logvar.exp())).sum(-1)


def _bernoulli_log_lik(logits, x):
    """log p(x|z) = sum x log sigmoid(l) + (1 - x) log(1 - sigmoid(l)) over the pixels."""
    return (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).flatten(-3).sum(-1)


# ---------------------------------------------------------------- hierarchical VAE


def _cell(cell, h):
    """ResidualCell: h + W2 silu(W1 silu(h) + b1) + b2."""
    first, second = cell.branch[1], cell.branch[3]
    return h + _linear(second, F.silu(_linear(first, F.silu(h))))


def _split(t):
    """A layer's output -> mean and NVAE's soft-clamped log-variance 10 tanh(v / 10)."""
    mu, raw = t.chunk(2, dim=-1)
    return mu, 10 * torch.tanh(raw / 10)


def _hvae_features(model, x):
    h = _linear(model.stem, x.flatten(1))
    feats = []
    for cell in model.bottom_up:
        h = _cell(cell, h)
        feats.append(h)
    return feats[::-1]  # deepest first: the top group reads the deepest feature


def _hvae_head(model, h):
    cell, _, out = model.head
    return _linear(out, F.silu(_cell(cell, h))).view(-1, *MNIST_SHAPE)


def _hvae_top_down(model, n, choose):
    """The top-down path by hand; choose(g, prior or None, h) -> z_g. Returns the logits
    and, per group, (prior, h before the group)."""
    h = model.h_top.expand(n, -1)
    trace = []
    for g, block in enumerate(model.blocks):
        prior = None if g == 0 else _split(_linear(block.prior, h))
        trace.append((prior, h))
        z = choose(g, prior, h)
        h = _cell(block.cell, h + _linear(block.project, z))
    return _hvae_head(model, h), trace


@pytest.fixture
def hvae():
    model = _preset_model("mnist-hvae")
    with torch.no_grad():
        start = torch.randn(model.h_top.shape, generator=torch.Generator().manual_seed(1))
        model.h_top.copy_(start)  # the learnt top state, not its zero initial value
        model.blocks[1].prior.bias[model.latent_dim] += 12.0  # one prior log-variance clamped
    return model


def test_hvae_preset_network_is_four_groups_of_sixteen(hvae):
    assert (hvae.groups, hvae.latent_dim, hvae.noise_dim) == (4, 16, 64)
    assert hvae.blocks[0].prior is None and all(b.prior is not None for b in hvae.blocks[1:])


def test_hvae_prior_sample_is_ancestral_sampling_by_hand(hvae):
    """generate: z_0 = eps_0 ~ N(0, I), z_g = mu_p(h) + eps_g sigma_p(h) below it, with the eps
    drawn as one (n, groups * D) normal block from the caller's generator."""
    n, d = 5, hvae.latent_dim
    draw = torch.Generator().manual_seed(7)
    eps = torch.randn(n, hvae.noise_dim, generator=draw, dtype=torch.float64)  # model's dtype

    def ancestral(g, prior, h):
        e = eps[:, g * d : (g + 1) * d]
        return e if prior is None else prior[0] + e * torch.exp(0.5 * prior[1])

    expected, trace = _hvae_top_down(hvae, n, ancestral)
    with torch.no_grad():
        got = hvae.generate(n, torch.Generator().manual_seed(7))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-10)
    # the clamp was live: group 1's first raw log-variance (about 12) sampled at under 10
    raw = _linear(hvae.blocks[1].prior, trace[1][1])[:, hvae.latent_dim]
    clamped = trace[1][0][1][:, 0]
    assert (clamped < 10).all() and (raw - clamped > 1).all()
    assert got.std() > 0.1  # not a constant image


def test_hvae_decode_of_a_chosen_top_latent_puts_the_lower_groups_at_their_prior_means(hvae):
    z_top = torch.linspace(-2, 2, 3 * hvae.latent_dim, dtype=torch.float64).view(3, -1)
    expected, _ = _hvae_top_down(hvae, 3, lambda g, prior, h: z_top if g == 0 else prior[0])
    with torch.no_grad():
        got = hvae.decode(z_top)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-10)
    with torch.no_grad():  # and the top latent matters: another one decodes to another image
        assert (hvae.decode(-z_top) - got).abs().max() > 1e-3


def _noise_for_top(model, x, z_top):
    """Noise that makes forward's top-group sample equal z_top for every image of x."""
    mu, logvar = model.encode(x)
    eps_top = (z_top - mu) / torch.exp(0.5 * logvar)
    rest = torch.randn(x.shape[0], model.noise_dim - model.latent_dim, dtype=torch.float64)
    return torch.cat([eps_top, rest], dim=1)


def test_hvae_forward_returns_the_posteriors_and_the_priors_given_the_groups_above(hvae):
    """q(z_g | x, z_<g) from [h, feature_g], p(z_g | z_<g) from h alone: two images whose top
    samples are set to the same value get the same prior for group 1, different posteriors."""
    x = _images(2, seed=3)
    d = hvae.latent_dim
    z_top = torch.full((2, d), 0.5, dtype=torch.float64)
    torch.manual_seed(4)
    noise = _noise_for_top(hvae, x, z_top)
    with torch.no_grad():
        out = hvae(x, noise=noise)
    feats = _hvae_features(hvae, x)

    def posterior(g, h):
        return _split(_linear(hvae.blocks[g].posterior, torch.cat([h, feats[g]], dim=-1)))

    def sample_posterior(g, prior, h):
        mu, logvar = posterior(g, h)
        return mu + noise[:, g * d : (g + 1) * d] * torch.exp(0.5 * logvar)

    logits, trace = _hvae_top_down(hvae, 2, sample_posterior)
    torch.testing.assert_close(out.params, logits, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(out.latents[0].z, z_top, rtol=1e-12, atol=1e-12)
    assert out.latents[0].p_mu is None and out.latents[0].p_logvar is None
    for g, (latent, (prior, h)) in enumerate(zip(out.latents, trace, strict=True)):
        q_mu, q_logvar = posterior(g, h)
        torch.testing.assert_close(latent.q_mu, q_mu, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(latent.q_logvar, q_logvar, rtol=1e-12, atol=1e-12)
        if g:
            torch.testing.assert_close(latent.p_mu, prior[0], rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(latent.p_logvar, prior[1], rtol=1e-12, atol=1e-12)
    # group 1's prior is a function of z_0 alone: the two images share it, not their posterior
    lower = out.latents[1]
    top_block = hvae.blocks[0]
    h1 = _cell(top_block.cell, hvae.h_top + _linear(top_block.project, z_top[:1]))
    by_hand = _split(_linear(hvae.blocks[1].prior, h1))
    torch.testing.assert_close(lower.p_mu, by_hand[0].expand(2, -1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lower.p_logvar, by_hand[1].expand(2, -1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lower.p_mu[0], lower.p_mu[1], rtol=1e-12, atol=1e-12)
    assert (lower.q_mu[0] - lower.q_mu[1]).abs().max() > 1e-3


def test_hvae_objective_terms_are_the_hand_log_densities(hvae):
    """-ELBO = -log p(x|z) + sum_g KL(q_g || p_g) in closed form; log w = log p(x|z) +
    sum_g [log p(z_g | z_<g) - log q(z_g | x, z_<g)] at the same samples."""
    x = _images(3, seed=5)
    with torch.no_grad():
        out = hvae(x, generator=torch.Generator().manual_seed(6))
    recon = -_bernoulli_log_lik(out.params, x)
    kl, log_ratio = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    for latent in out.latents:
        q_mu, q_lv = latent.q_mu, latent.q_logvar
        p_mu = torch.zeros_like(q_mu) if latent.p_mu is None else latent.p_mu
        p_lv = torch.zeros_like(q_lv) if latent.p_logvar is None else latent.p_logvar
        kl += 0.5 * (p_lv - q_lv + (q_lv.exp() + (q_mu - p_mu) ** 2) / p_lv.exp() - 1).sum(-1)
        log_ratio += _log_normal(latent.z, p_mu, p_lv) - _log_normal(latent.z, q_mu, q_lv)
    terms = negative_elbo(x, out)
    torch.testing.assert_close(terms["recon"], recon, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(terms["kl"], kl, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(terms["loss"], recon + kl, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(log_weights(x, out), -recon + log_ratio)
    assert (kl > 0).all() and recon.min() > 100  # an untrained model: real, sizeable terms


# ---------------------------------------------------------------- two-layer IWAE


def _gaussian_layer(layer, x):
    first, second = layer.body[0], layer.body[2]
    h = torch.tanh(_linear(second, torch.tanh(_linear(first, x))))
    return _linear(layer.mu, h), _linear(layer.logvar, h)


def _p_x(model, z1):
    first, second, out = model.p_x[0], model.p_x[2], model.p_x[4]
    h = torch.tanh(_linear(second, torch.tanh(_linear(first, z1))))
    return _linear(out, h).view(*z1.shape[:-1], *MNIST_SHAPE)


@pytest.fixture
def iwae2l():
    return _preset_model("mnist-iwae-2l")


def test_iwae_2l_preset_network_is_the_papers(iwae2l):
    """Burda et al.: x -> 100 -> 100 -> z1 (100) -> 50 -> 50 -> z2 (50), tanh between."""
    assert (iwae2l.z1_dim, iwae2l.z2_dim, iwae2l.noise_dim) == (100, 50, 150)
    assert [m.out_features for m in iwae2l.q_z1.body if hasattr(m, "out_features")] == [100, 100]
    assert [m.out_features for m in iwae2l.q_z2.body if hasattr(m, "out_features")] == [50, 50]
    assert [m.out_features for m in iwae2l.p_z1.body if hasattr(m, "out_features")] == [50, 50]


def test_iwae_2l_prior_sample_is_ancestral_sampling_by_hand(iwae2l):
    """generate: z2 ~ N(0, I), then z1 = mu(z2) + eps sigma(z2), drawn in that order from the
    caller's generator, then p(x|z1)'s logits."""
    n = 4
    g = torch.Generator().manual_seed(8)
    z2 = torch.randn(n, 50, generator=g, dtype=torch.float64)  # drawn in the model's dtype
    eps = torch.randn(n, 100, generator=g, dtype=torch.float64)
    mu1, logvar1 = _gaussian_layer(iwae2l.p_z1, z2)
    expected = _p_x(iwae2l, mu1 + eps * torch.exp(0.5 * logvar1))
    with torch.no_grad():
        got = iwae2l.generate(n, torch.Generator().manual_seed(8))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-10)
    with torch.no_grad():  # z1 is sampled, not its mean: the decode of the same z2 differs
        assert (iwae2l.decode(z2) - got).abs().max() > 1e-3


def test_iwae_2l_decode_of_a_chosen_top_latent_goes_through_the_mean_of_z1(iwae2l):
    z2 = torch.linspace(-1.5, 1.5, 100, dtype=torch.float64).view(2, 50)
    mu1, _ = _gaussian_layer(iwae2l.p_z1, z2)
    with torch.no_grad():
        got = iwae2l.decode(z2)
    torch.testing.assert_close(got, _p_x(iwae2l, mu1), rtol=1e-12, atol=1e-10)


def test_iwae_2l_forward_prior_of_z1_is_p_z1_given_the_sampled_z2(iwae2l):
    """q(z1|x), z1 = mu1 + eps1 sigma1, q(z2|z1), z2 = mu2 + eps2 sigma2 (noise = [eps1, eps2]),
    and the lower group's prior p(z1|z2) at that very z2; logits from p(x|z1)."""
    x = _images(3, seed=9)
    noise = torch.randn(3, 150, generator=torch.Generator().manual_seed(10)).double()
    with torch.no_grad():
        out = iwae2l(x, noise=noise)
    mu1, logvar1 = _gaussian_layer(iwae2l.q_z1, x.flatten(1))
    z1 = mu1 + noise[:, :100] * torch.exp(0.5 * logvar1)
    mu2, logvar2 = _gaussian_layer(iwae2l.q_z2, z1)
    z2 = mu2 + noise[:, 100:] * torch.exp(0.5 * logvar2)
    p_mu1, p_logvar1 = _gaussian_layer(iwae2l.p_z1, z2)
    top, lower = out.latents
    for got, expected in [
        (top.z, z2),
        (top.q_mu, mu2),
        (top.q_logvar, logvar2),
        (lower.z, z1),
        (lower.q_mu, mu1),
        (lower.q_logvar, logvar1),
        (lower.p_mu, p_mu1),
        (lower.p_logvar, p_logvar1),
        (out.params, _p_x(iwae2l, z1)),
    ]:
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-10)
    assert top.p_mu is None and top.p_logvar is None


def test_iwae_2l_bound_is_the_hand_log_mean_exp_of_the_weights(iwae2l):
    """log w = log p(x|z1) + log p(z1|z2) + log N(z2; 0, I) - log q(z1|x) - log q(z2|z1);
    the IWAE loss is -log (1/k) sum_i w_i and the lower group's KL the sampled log ratio."""
    x, k = _images(2, seed=11), 6
    noise = torch.randn(2, k, 150, generator=torch.Generator().manual_seed(12)).double()
    with torch.no_grad():
        out = iwae2l(x, noise=noise, k=k)
    mu1, logvar1 = _gaussian_layer(iwae2l.q_z1, x.flatten(1))
    z1 = mu1[:, None] + noise[..., :100] * torch.exp(0.5 * logvar1[:, None])
    mu2, logvar2 = _gaussian_layer(iwae2l.q_z2, z1)
    z2 = mu2 + noise[..., 100:] * torch.exp(0.5 * logvar2)
    p_mu1, p_logvar1 = _gaussian_layer(iwae2l.p_z1, z2)
    log_px = _bernoulli_log_lik(_p_x(iwae2l, z1), x[:, None])
    log_p = _log_normal(z1, p_mu1, p_logvar1) + (-0.5 * (LOG_2PI + z2**2)).sum(-1)
    log_q = _log_normal(z1, mu1[:, None], logvar1[:, None]) + _log_normal(z2, mu2, logvar2)
    log_w = log_px + log_p - log_q
    assert log_w.shape == (2, k)
    torch.testing.assert_close(log_weights(x, out), log_w, rtol=1e-12, atol=1e-9)
    bound = torch.log(torch.exp(log_w - log_w.max(1, keepdim=True).values).mean(1))
    bound = bound + log_w.max(1).values
    terms = training_terms(x, out, objective="iwae")
    torch.testing.assert_close(terms["loss"], -bound, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(terms["objective"], -bound.sum(), rtol=1e-12, atol=1e-9)
    top, lower = out.latents
    lower_kl = _log_normal(z1, mu1[:, None], logvar1[:, None]) - _log_normal(z1, p_mu1, p_logvar1)
    torch.testing.assert_close(latent_kl(lower), lower_kl, rtol=1e-12, atol=1e-9)
    top_kl = 0.5 * (mu2**2 + logvar2.exp() - 1 - logvar2).sum(-1)
    torch.testing.assert_close(latent_kl(top), top_kl, rtol=1e-12, atol=1e-9)
    assert (bound > log_w.mean(1)).all()  # Jensen: the k-sample bound above the mean log w
