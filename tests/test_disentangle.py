"""beta-TCVAE's estimator and FactorVAE's discriminator against closed forms and runs."""

from __future__ import annotations

import math

import pytest
import torch

from vaekit import checkpoint
from vaekit.config import ObjectiveConfig
from vaekit.disentangle import (
    DiscriminatorCompanion,
    beta_tcvae_terms,
    discriminator_loss,
    factorvae_terms,
    permute_dims,
    tc_decomposition,
)
from vaekit.errors import ConfigError
from vaekit.models.base import Latent, VAEOutput
from vaekit.objectives import bernoulli_nll, training_terms
from vaekit.training.loop import fit


def _quiet(_: str) -> None:
    pass


def _correlated_posteriors(n: int, rho: float, s2: float, seed: int = 0):
    """n posteriors N(mu_j, s2 I) whose means are N(0, C - s2 I), C the 2-d correlation
    matrix with off-diagonal rho: the aggregate posterior is then N(0, C), TC -1/2 log det C."""
    g = torch.Generator().manual_seed(seed)
    cov = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64) - s2 * torch.eye(2)
    mu = torch.randn(n, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    logvar = torch.full_like(mu, math.log(s2))
    z = mu + math.sqrt(s2) * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return z, mu, logvar


@pytest.mark.parametrize("rho", [0.0, 0.45, -0.3])
def test_tc_of_a_correlated_gaussian(rho):
    """With the batch the whole data set (M = N) the estimate is the exact aggregate
    posterior's log density less log N, so TC comes out as -1/2 log(1 - rho^2) + log N."""
    n = 3000
    z, mu, logvar = _correlated_posteriors(n, rho, 0.5)
    parts = tc_decomposition(z, mu, logvar, dataset_size=n)
    expected = -0.5 * math.log(1 - rho**2)
    assert parts["tc"].mean().item() - math.log(n) == pytest.approx(expected, abs=0.02)


def test_decomposition_sums_to_the_one_sample_kl():
    z, mu, logvar = _correlated_posteriors(64, 0.3, 0.4, seed=1)
    parts = tc_decomposition(z, mu, logvar, dataset_size=10_000)
    log_q = -0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 / logvar.exp()).sum(1)
    log_p = -0.5 * (math.log(2 * math.pi) + z**2).sum(1)
    total = parts["mi"] + parts["tc"] + parts["dwkl"]
    torch.testing.assert_close(total, log_q - log_p)


def test_mutual_information_estimate_rises_with_how_much_z_tells_of_x():
    """A posterior narrow against the spread of the means carries more index-code MI."""
    g = torch.Generator().manual_seed(2)
    mu = torch.randn(512, 3, generator=g, dtype=torch.float64)
    mis = []
    for s2 in (1.0, 0.01):
        logvar = torch.full_like(mu, math.log(s2))
        z = mu + math.sqrt(s2) * torch.randn(512, 3, generator=g, dtype=torch.float64)
        mis.append(tc_decomposition(z, mu, logvar, 512)["mi"].mean().item() - math.log(512))
    assert 0 < mis[0] < mis[1] <= math.log(512) + 1e-9


def _output(seed: int = 0, batch: int = 32, latent: int = 4):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, 8, 8, generator=g, dtype=torch.float64)
    logits = torch.randn(batch, 1, 8, 8, generator=g, dtype=torch.float64)
    mu = torch.randn(batch, latent, generator=g, dtype=torch.float64)
    logvar = 0.3 * torch.randn(batch, latent, generator=g, dtype=torch.float64)
    z = mu + (0.5 * logvar).exp() * torch.randn(batch, latent, generator=g, dtype=torch.float64)
    return x, VAEOutput([Latent(z, mu, logvar)], logits)


def test_beta_tcvae_with_unit_weights_is_the_one_sample_elbo():
    x, out = _output()
    terms = training_terms(x, out, bernoulli_nll, "beta-tcvae", 1.0, 0.0, dataset_size=1000)
    recon = bernoulli_nll(out.params, x, event_dims=3)
    lat = out.latents[0]
    log_q = -0.5 * (
        math.log(2 * math.pi) + lat.q_logvar + (lat.z - lat.q_mu) ** 2 / lat.q_logvar.exp()
    )
    log_p = -0.5 * (math.log(2 * math.pi) + lat.z**2)
    expected = (recon + (log_q - log_p).sum(1)).sum()
    torch.testing.assert_close(terms["objective"], expected)
    torch.testing.assert_close(terms["loss"], terms["recon"] + terms["kl"])


def test_beta_weights_only_the_total_correlation():
    x, out = _output(seed=3)
    one = beta_tcvae_terms(x, out, bernoulli_nll, 1.0, 0.0, dataset_size=500)
    six = beta_tcvae_terms(x, out, bernoulli_nll, 6.0, 0.0, alpha=2.0, gamma=0.5, dataset_size=500)
    extra = (one["mi"] * 1.0 + one["tc"] * 5.0 - one["dwkl"] * 0.5).sum()
    torch.testing.assert_close(six["objective"] - one["objective"], extra)


def test_permuting_keeps_each_dimension_and_breaks_their_dependence():
    g = torch.Generator().manual_seed(4)
    a = torch.randn(4000, 1, generator=g)
    z = torch.cat([a, a + 0.1 * torch.randn(4000, 1, generator=g)], dim=1)
    shuffled = permute_dims(z, torch.Generator().manual_seed(5))
    for d in range(2):  # the same values per dimension, reordered
        assert torch.equal(z[:, d].sort().values, shuffled[:, d].sort().values)
    assert torch.corrcoef(z.T)[0, 1] > 0.99
    assert abs(torch.corrcoef(shuffled.T)[0, 1].item()) < 0.05


def test_the_discriminator_learns_to_tell_correlated_codes_from_their_permutation():
    """Trained on z with TC = -1/2 log(1 - 0.9^2) = 0.83 nats, its density-ratio estimate
    approaches that value and its loss falls below chance (log 2)."""
    torch.manual_seed(0)
    torch.set_num_threads(1)  # tiny matrices: more threads only wait on each other
    config = ObjectiveConfig(objective="factorvae", disc_lr=3e-3, disc_hidden=64, disc_layers=2)
    companion = DiscriminatorCompanion(config, 2, torch.device("cpu"))
    chol = torch.linalg.cholesky(torch.tensor([[1.0, 0.9], [0.9, 1.0]]))
    for _ in range(400):
        z = torch.randn(256, 2) @ chol.T
        companion.after_step(VAEOutput([Latent(z, z, z)], None))
    z = torch.randn(20000, 2) @ chol.T
    with torch.no_grad():
        logits = companion.module(z)
        loss = discriminator_loss(logits, companion.module(permute_dims(z))).item()
        tc = (logits[:, 0] - logits[:, 1]).mean().item()
    assert loss < math.log(2) - 0.1
    assert tc == pytest.approx(-0.5 * math.log(1 - 0.81), abs=0.2)


def test_factorvae_adds_gamma_times_the_discriminator_tc():
    x, out = _output(seed=6)
    torch.manual_seed(1)
    disc = torch.nn.Linear(4, 2).double()
    base = training_terms(x, out, bernoulli_nll, "elbo", 1.0, 0.0)
    terms = factorvae_terms(x, out, bernoulli_nll, 1.0, 0.0, gamma=10.0, discriminator=disc)
    logits = disc(out.latents[0].z)
    expected = base["objective"] + 10.0 * (logits[:, 0] - logits[:, 1]).sum()
    torch.testing.assert_close(terms["objective"], expected)
    with pytest.raises(ConfigError, match="discriminator"):
        factorvae_terms(x, out, bernoulli_nll, 1.0, 0.0)


def test_config_refuses_weights_of_another_objective():
    with pytest.raises(ConfigError, match="--alpha"):
        ObjectiveConfig(objective="elbo", alpha=2.0).validate()
    with pytest.raises(ConfigError, match="free bits"):
        ObjectiveConfig(objective="beta-tcvae", free_bits=1.0).validate()
    ObjectiveConfig(objective="factorvae", gamma=40.0).validate()


@pytest.mark.parametrize("objective", ["beta-tcvae", "factorvae"])
def test_resume_repeats_an_uninterrupted_run(objective, small_config, tmp_path, untimed_metrics):
    """2 epochs straight == 1 epoch, stop, 1 more: weights, the discriminator and its
    Adam moments (FactorVAE), and every epoch's record with the objective's own terms."""
    small_config.data.limit = 600
    small_config.objective.objective = objective
    small_config.objective.beta = 4.0
    small_config.objective.gamma = 5.0
    small_config.objective.disc_hidden, small_config.objective.disc_layers = 32, 2
    straight = fit(small_config, tmp_path / "straight", log=_quiet, progress=False)
    small_config.train.epochs = 1
    resumed = fit(small_config, tmp_path / "resumed", log=_quiet, progress=False)
    fit(small_config, resumed, resume=True, resume_overrides={"epochs": 2}, log=_quiet)
    a, b = checkpoint.load(straight), checkpoint.load(resumed)
    for key in a.model_state:
        assert torch.equal(a.model_state[key], b.model_state[key]), key
    if objective == "factorvae":
        for key, value in a.companion_state["module"].items():
            assert torch.equal(value, b.companion_state["module"][key]), key
        moments = a.companion_state["optimizer"]["state"]
        assert moments and all(
            torch.equal(v, b.companion_state["optimizer"]["state"][i][k])
            for i, state in moments.items()
            for k, v in state.items()
        )
    else:
        assert a.companion_state is None
    records = untimed_metrics(straight)
    assert records == untimed_metrics(resumed)
    assert "train_tc" in records[1]
