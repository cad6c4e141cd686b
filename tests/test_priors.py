"""The VampPrior (Tomczak & Welling 2018): mixture density and sampling by hand, and a
short run of a model that uses it, through training, the estimate and sampling."""

from __future__ import annotations

import math

import torch

from vaekit.config import model_config
from vaekit.evaluation import estimate as ev
from vaekit.models import build_model
from vaekit.priors import mixture_log_prob, mixture_moments, mixture_sample


def test_mixture_log_prob_matches_a_hand_computed_mixture():
    mu = torch.tensor([[0.0, 1.0], [2.0, -1.0], [-1.0, 0.5]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, 0.5], [-1.0, 0.0], [0.3, -0.2]], dtype=torch.float64)
    z = torch.tensor([[0.3, -0.4], [1.5, 2.0]], dtype=torch.float64)
    expected = []
    for point in z:
        density = 0.0
        for m, lv in zip(mu, logvar, strict=True):
            var = lv.exp()
            gauss = torch.exp(-0.5 * (point - m).pow(2) / var) / torch.sqrt(2 * math.pi * var)
            density += gauss.prod().item() / 3
        expected.append(math.log(density))
    torch.testing.assert_close(mixture_log_prob(z, mu, logvar), torch.tensor(expected).double())
    # broadcasting over a sample dimension: (B, k, D) -> (B, k)
    assert mixture_log_prob(z[:, None].expand(2, 4, 2), mu, logvar).shape == (2, 4)


def test_mixture_sampling_has_the_mixtures_mean_and_variance():
    mu = torch.tensor([[-2.0, 0.0], [1.0, 3.0], [0.5, -1.0]])
    logvar = torch.tensor([[-1.0, 0.0], [0.0, -2.0], [0.5, 0.2]])
    draws = mixture_sample(mu, logvar, 200_000, torch.Generator().manual_seed(0))
    mean, variance = mixture_moments(mu, logvar)
    torch.testing.assert_close(draws.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(draws.var(0), variance, atol=0.03, rtol=0.01)


def _vamp():
    torch.manual_seed(0)
    config = model_config("mlp", prior="vamp", pseudo_inputs=7, latent_dim=3, hidden_dim=32)
    return build_model(config, (1, 28, 28))


def test_vamp_model_scores_z_by_the_mixture_of_its_pseudo_inputs_posteriors():
    model = _vamp()
    x = torch.rand(5, 1, 28, 28)
    out = model(x, k=4)
    latent = out.latents[0]
    mu, logvar = model.encode(torch.sigmoid(model.prior.pseudo_inputs))
    torch.testing.assert_close(latent.log_p, mixture_log_prob(latent.z, mu, logvar))
    assert not latent.analytic_kl and model.prior_sample(6).shape == (6, 3)
    assert sorted(k for k in model.state_dict() if k.startswith("prior")) == ["prior.pseudo_inputs"]


def test_vamp_model_trains_and_is_evaluated(small_config, tmp_path):
    from vaekit import api

    config = small_config
    config.model = model_config("mlp", prior="vamp", pseudo_inputs=20, latent_dim=4)
    config.data.limit, config.train.epochs = 600, 1
    run = api.train(config, tmp_path / "run", log=lambda _: None, progress=False)
    model = api.load(run, "cpu")
    assert model.prior is not None
    x = torch.rand(8, 1, 28, 28).round()
    log_px = ev.importance_weighted_log_px(model, x, 16, torch.Generator().manual_seed(0))
    assert log_px.shape == (8,) and torch.isfinite(log_px).all()
    pseudo = model.prior.pseudo_inputs.detach()
    assert not torch.allclose(pseudo, torch.zeros_like(pseudo))


def _vamp_hvae():
    torch.manual_seed(0)
    config = model_config(
        "hvae", prior="vamp", pseudo_inputs=5, latent_dim=3, hidden_dim=24, groups=3
    )
    return build_model(config, (1, 28, 28))


def test_hvae_top_group_is_scored_by_the_vamp_mixture_and_the_rest_in_closed_form():
    from vaekit.objectives import gaussian_kl_between, gaussian_log_prob, latent_kl

    model = _vamp_hvae()
    x = torch.rand(4, 1, 28, 28).round()
    for k in (None, 3):
        top, *lower = model(x, generator=torch.Generator().manual_seed(0), k=k).latents
        mu, logvar = model.encode(torch.sigmoid(model.prior.pseudo_inputs))  # (5, 3) each
        torch.testing.assert_close(top.log_p, mixture_log_prob(top.z, mu, logvar))
        torch.testing.assert_close(top.log_q, gaussian_log_prob(top.z, top.q_mu, top.q_logvar))
        torch.testing.assert_close(latent_kl(top), top.log_q - top.log_p)
        assert not top.analytic_kl and all(g.analytic_kl and g.log_p is None for g in lower)
        low = lower[0]
        want = gaussian_kl_between(low.q_mu, low.q_logvar, low.p_mu, low.p_logvar)
        torch.testing.assert_close(latent_kl(low), want)
    assert mu.shape == (5, 3) and top.z.shape == (4, 3, 3)


def test_hvae_samples_its_top_group_from_the_mixture():
    model = _vamp_hvae()
    picked = {}

    def record(n, feats, pick, y=None):  # the top group each draw starts from
        z = pick(0, None, None)
        picked["top"] = z
        return torch.zeros(n, 1, 28, 28), []

    model.top_down = record
    with torch.no_grad():
        model.generate(20_000, torch.Generator().manual_seed(0))
        mean, variance = mixture_moments(*model.encode(torch.sigmoid(model.prior.pseudo_inputs)))
    torch.testing.assert_close(picked["top"].mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(picked["top"].var(0), variance, atol=0.03, rtol=0.05)


def test_hvae_with_a_vamp_prior_trains_and_is_evaluated(small_config, tmp_path):
    from vaekit import api

    config = small_config
    config.model = model_config("hvae", prior="vamp", pseudo_inputs=10, hidden_dim=32)
    config.data.limit, config.train.epochs = 300, 1
    model = api.load(api.train(config, tmp_path / "run", log=lambda _: None, progress=False))
    x = torch.rand(6, 1, 28, 28).round()
    log_px = ev.importance_weighted_log_px(model, x, 8, torch.Generator().manual_seed(0))
    assert torch.isfinite(log_px).all() and model.prior.pseudo_inputs.shape == (10, 1, 28, 28)


def test_mixture_log_prob_in_fp32_matches_the_direct_sum_far_from_and_near_the_means():
    generator = torch.Generator().manual_seed(0)
    mu = 3 * torch.randn(50, 8, generator=generator)
    logvar = torch.empty(50, 8).uniform_(-5, 1, generator=generator)
    near = mu[torch.arange(40) % 50] + 0.01 * torch.randn(40, 8, generator=generator)
    z = torch.cat([near, 6 * torch.randn(40, 8, generator=generator)])
    z64, mu64, lv64 = z.double(), mu.double(), logvar.double()
    diff = z64[:, None] - mu64  # the direct form, in float64
    direct = -0.5 * (math.log(2 * math.pi) + lv64 + diff.pow(2) * (-lv64).exp()).sum(-1)
    want = torch.logsumexp(direct, -1) - math.log(50)
    torch.testing.assert_close(mixture_log_prob(z, mu, logvar).double(), want, atol=2e-3, rtol=1e-5)
