"""Decoder likelihoods against numerical integration and torch.distributions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vaekit.config.registry import LIKELIHOOD
from vaekit.likelihoods import (
    TABLE_LIKELIHOODS,
    bernoulli_nll,
    continuous_bernoulli_log_norm,
    continuous_bernoulli_mean,
    continuous_bernoulli_nll,
    gaussian_nll,
    get_likelihood,
    learned_logvar,
)

SWITCH = 1e-2  # |logit| below which the continuous Bernoulli uses its Taylor series
# Logits on both sides of the switch, at 0 exactly, and far into saturation.
CB_LOGITS = [0.0, 1e-6, -3e-3, 9.9e-3, -9.9e-3, 1.01e-2, 0.3, -1.0, 2.5, -7.0, 30.0, -30.0]
GRID = torch.linspace(0.0, 1.0, 200_001, dtype=torch.float64)  # x in [0, 1], step 5e-6


def _integrate(values: torch.Tensor) -> torch.Tensor:
    """The integral over x in [0, 1] of values sampled on GRID (last dimension)."""
    return torch.trapezoid(values, GRID, dim=-1)


def _cb_unnormalised(logit: float) -> torch.Tensor:
    """lambda^x (1 - lambda)^(1 - x) on GRID, computed in log space (exact for |l| = 30)."""
    t = torch.tensor(logit, dtype=torch.float64)
    return torch.exp(GRID * F.logsigmoid(t) + (1 - GRID) * F.logsigmoid(-t))


def _cb_density(logit: float) -> torch.Tensor:
    """exp(-continuous_bernoulli_nll) on GRID: the library's density of x under CB(logit)."""
    logits = torch.full((GRID.shape[0], 1), logit, dtype=torch.float64)
    return torch.exp(-continuous_bernoulli_nll(logits, GRID[:, None], event_dims=1))


# ------------------------------------------------------------ continuous Bernoulli


@pytest.mark.parametrize("logit", CB_LOGITS)
def test_cb_normaliser_is_one_over_the_integral(logit):
    """C(lambda) = 1 / integral_0^1 lambda^x (1 - lambda)^(1 - x) dx (Loaiza-Ganem 2019, eq. 7)."""
    integral = _integrate(_cb_unnormalised(logit))
    log_c = continuous_bernoulli_log_norm(torch.tensor([logit], dtype=torch.float64))
    assert log_c.dtype == torch.float64
    assert torch.exp(log_c).item() == pytest.approx(1 / integral.item(), rel=1e-8)


def test_cb_normaliser_known_values():
    """C = 2 at lambda = 1/2; C ~ |l| for large |l|, symmetric in the sign of l."""
    logits = torch.tensor([0.0, 30.0, -30.0, 200.0, -200.0], dtype=torch.float64)
    log_c = continuous_bernoulli_log_norm(logits)
    assert log_c[0].item() == math.log(2.0)
    expected = [math.log(30.0)] * 2 + [math.log(200.0)] * 2  # l / tanh(l / 2), tanh = 1 - 2e-13
    torch.testing.assert_close(log_c[1:], torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("logit", [0.0, 5e-3, -0.5, 1.7, -4.0, 12.0, 30.0, -30.0])
def test_cb_density_integrates_to_one(logit):
    assert _integrate(_cb_density(logit)).item() == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_cb_series_and_closed_form_agree_at_the_switch(dtype, tol):
    """log C is continuous where the Taylor series hands over to the closed form."""
    above = torch.tensor([SWITCH, -SWITCH], dtype=dtype)  # |l| = switch: the closed form
    below = torch.nextafter(above, torch.zeros_like(above))  # one ulp nearer 0: the series
    jump = continuous_bernoulli_log_norm(above) - continuous_bernoulli_log_norm(below)
    assert jump.abs().max().item() < tol
    # and both sides equal log(l / tanh(l / 2)) evaluated in float64
    for side in (below, above):
        t = side.double()
        exact = torch.log(t / torch.tanh(t / 2))
        got = continuous_bernoulli_log_norm(side).double()
        assert (got - exact).abs().max().item() < tol


def test_cb_log_norm_has_finite_gradients_everywhere():
    """The 0/0 at l = 0 is in neither the value nor the gradient; gradient matches finite
    differences on both sides of the switch and at 0."""
    logits = torch.tensor([0.0, 3e-3, -0.2, 1.5, -30.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(continuous_bernoulli_log_norm, (logits,))
    continuous_bernoulli_log_norm(logits).sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0].item() == 0.0  # log C is even in l


@pytest.mark.parametrize("logit", [0.0, 4e-3, -0.4, 2.0, -6.0, 25.0])
def test_cb_mean_equals_integral_of_x_times_density(logit):
    expected = _integrate(GRID * _cb_density(logit)).item()
    got = continuous_bernoulli_mean(torch.tensor([logit], dtype=torch.float64)).item()
    assert got == pytest.approx(expected, abs=1e-8)


def test_cb_mean_tends_to_one_half_at_zero_and_is_not_lambda():
    logits = torch.tensor([0.0, 1e-8, -1e-8, 1e-4], dtype=torch.float64)
    means = continuous_bernoulli_mean(logits)
    assert means[0].item() == 0.5
    torch.testing.assert_close(means, torch.full_like(means, 0.5), atol=1e-5, rtol=0)
    # away from 0 it is well inside sigmoid(l): at l = 3, lambda = 0.953 but E[x] = 0.719
    t = torch.tensor([3.0], dtype=torch.float64)
    expected = torch.sigmoid(t) / torch.tanh(t / 2) - 1 / t
    assert continuous_bernoulli_mean(t).item() == pytest.approx(expected.item(), rel=1e-12)
    assert continuous_bernoulli_mean(t).item() < torch.sigmoid(t).item() - 0.2


def test_cb_mean_is_continuous_and_increasing_across_the_switch():
    logits = torch.linspace(-0.05, 0.05, 20_001, dtype=torch.float64)
    means = continuous_bernoulli_mean(logits)
    assert (means[1:] > means[:-1]).all()
    eps = torch.tensor([SWITCH * (1 - 1e-9), SWITCH * (1 + 1e-9)], dtype=torch.float64)
    jump = continuous_bernoulli_mean(eps).diff().abs().item()
    assert jump < 2e-9  # the series drops only the l^3 / 720 term


# ---------------------------------------------------------------- Gaussian decoders


def _images(seed: int, shape=(4, 3, 5, 6), dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=dtype)
    logits = 2 * torch.randn(shape, generator=g, dtype=dtype)
    return x, logits, g


@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.7])
def test_gaussian_fixed_sigma_matches_torch_normal(sigma):
    x, logits, _ = _images(0)
    expected = -torch.distributions.Normal(torch.sigmoid(logits), sigma).log_prob(x).sum((1, 2, 3))
    got = get_likelihood("gaussian", sigma).nll(logits, x)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(gaussian_nll(logits, x, 2 * math.log(sigma)), expected)


def test_gaussian_learned_matches_torch_normal_with_floored_variance():
    """Channels 0..C-1 are the mean logits, C..2C-1 the raw log-variances of the same channels:
    variance = floor^2 * (1 + e^raw) = exp(2 log floor + softplus(raw))."""
    floor = 0.1
    x, mean_logits, g = _images(1)
    raw = 4 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    raw[0, 0, 0, :3] = torch.tensor([-60.0, 0.0, 40.0], dtype=torch.float64)
    params = torch.cat([mean_logits, raw], dim=1)
    likelihood = get_likelihood("gaussian-learned", floor)
    assert likelihood.params_per_channel == 2
    std = floor * torch.sqrt(1 + torch.exp(raw))
    expected = -torch.distributions.Normal(torch.sigmoid(mean_logits), std).log_prob(x)
    torch.testing.assert_close(likelihood.nll(params, x), expected.sum((1, 2, 3)))
    torch.testing.assert_close(likelihood.mean(params), torch.sigmoid(mean_logits))
    # the same with a sample dimension: (B, k, 2C, H, W) against (B, 1, C, H, W)
    stacked = torch.stack([params, params.flip(0)], dim=1)
    per_sample = likelihood.nll(stacked, x[:, None])
    torch.testing.assert_close(per_sample[:, 0], expected.sum((1, 2, 3)))


def test_learned_variance_never_falls_below_the_floor():
    floor = 0.05
    raw = torch.tensor([-1e4, -100.0, -20.0, 0.0, 3.0, 50.0], dtype=torch.float64)
    var = torch.exp(learned_logvar(raw, floor))
    assert (var >= floor**2).all()
    torch.testing.assert_close(var[:2], torch.full((2,), floor**2, dtype=torch.float64))
    assert var[3].item() == pytest.approx(2 * floor**2)  # softplus(0) = log 2
    torch.testing.assert_close(var, floor**2 * (1 + torch.exp(raw)))
    # a gradient even far below the floor (softplus, not a hard clamp)
    raw = torch.tensor([-5.0], requires_grad=True)
    learned_logvar(raw, floor).sum().backward()
    assert raw.grad.item() == pytest.approx(torch.sigmoid(torch.tensor(-5.0)).item())


# -------------------------------------------------------------- Bernoulli and lookup


def test_bernoulli_on_binary_images_matches_torch_bernoulli():
    x, logits, _ = _images(2)
    x = (x > 0.5).double()
    logits[0, 0, 0, :2] = torch.tensor([80.0, -80.0], dtype=torch.float64)
    expected = -torch.distributions.Bernoulli(logits=logits).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(bernoulli_nll(logits, x), expected)
    torch.testing.assert_close(get_likelihood("bernoulli").nll(logits, x), expected)


def test_unknown_likelihood_is_a_value_error_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown likelihood 'poisson'.*continuous-bernoulli"):
        get_likelihood("poisson")


@pytest.mark.parametrize("name", [n for n in LIKELIHOOD.names() if n not in TABLE_LIKELIHOODS])
def test_means_lie_in_the_unit_interval_and_nll_is_finite(name):
    likelihood = get_likelihood(name, 0.1)
    g = torch.Generator().manual_seed(3)
    shape = (3, likelihood.params_per_channel * 2, 4, 4)
    params = 20 * torch.randn(shape, generator=g)
    params[0, :, 0, :4] = torch.tensor([0.0, 1e-3, 200.0, -200.0])
    mean = likelihood.mean(params)
    assert mean.shape == (3, 2, 4, 4)
    assert ((mean >= 0) & (mean <= 1)).all()
    x = torch.rand(3, 2, 4, 4, generator=g)
    assert torch.isfinite(likelihood.nll(params, x)).all()
    assert likelihood.continuous == (name != "bernoulli")
