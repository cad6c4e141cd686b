"""Evaluation: the importance-weighted estimator against an exact likelihood, and the report.

A linear-Gaussian VAE, p(z) = N(0, I), p(x|z) = N(Wz + b, s2 I), has the exact
marginal log p(x) = log N(x; b, W W^T + s2 I) and an exact posterior. Given an
encoder that is deliberately not that posterior, the ELBO sits strictly below
log p(x) and the importance-weighted estimate climbs towards it as k grows:
exactly what a wrong estimator (a missing log k, a bad chunk merge, a sign)
would break.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from vaekit.cli import main
from vaekit.config import EvalConfig, HVAEConfig, MLPConfig, model_config
from vaekit.data import Split, evaluation_images, static_binarize
from vaekit.evaluation import estimate as ev
from vaekit.evaluation.result import EvalResult
from vaekit.likelihoods import Likelihood
from vaekit.models import build_model
from vaekit.models.base import VAE
from vaekit.objectives import bernoulli_nll, gaussian_kl, gaussian_log_prob
from vaekit.training.loop import fit

X_DIM, Z_DIM = 6, 2


class LinearGaussianVAE(VAE):
    """encode: q(z|x) = N(A (x - b) + c, diag(exp(q_logvar))); decode: the mean W z + b."""

    def __init__(self, W, b, log_s2, A, c, q_logvar) -> None:
        likelihood = Likelihood("linear-gaussian", 1, self.nll, lambda mean: mean, True)
        super().__init__((X_DIM, 1, 1), Z_DIM, likelihood)
        self.W, self.b, self.log_s2 = W, b, log_s2
        self.A, self.c, self.q_logvar = A, c, q_logvar
        self.anchor = nn.Parameter(torch.zeros(1, dtype=W.dtype))  # gives the module a device

    def encode(self, x):
        mu = (x - self.b) @ self.A.T + self.c
        return mu, self.q_logvar.expand_as(mu)

    def decode(self, z):
        return z @ self.W.T + self.b

    def nll(self, mean, x, event_dims=1):
        """-log N(x; mean, s2 I) over the vector's entries (x is a vector, not an image)."""
        return -gaussian_log_prob(x, mean, self.log_s2)

    def exact_log_px(self, x):
        cov = self.W @ self.W.T + self.log_s2.exp() * torch.eye(X_DIM, dtype=x.dtype)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x)

    def analytic_elbo(self, x):
        """E_q[log p(x|z)] - KL(q || p) in closed form, for q = encode(x)."""
        mu, logvar = self.encode(x)
        s2 = self.log_s2.exp()
        residual = (x - mu @ self.W.T - self.b).pow(2).sum(1)
        spread = (self.W.pow(2) * logvar.exp()[:, None, :]).sum((1, 2))  # tr(W S W^T)
        expected_ll = -0.5 * X_DIM * (math.log(2 * math.pi) + self.log_s2) - (residual + spread) / (
            2 * s2
        )
        return expected_ll - gaussian_kl(mu, logvar)


def linear_gaussian(exact_posterior: bool = False) -> LinearGaussianVAE:
    g = torch.Generator().manual_seed(0)
    W = torch.randn(X_DIM, Z_DIM, generator=g, dtype=torch.float64)
    b = torch.randn(X_DIM, generator=g, dtype=torch.float64)
    log_s2 = torch.tensor(math.log(0.3), dtype=torch.float64)
    # Exact posterior: Sigma = (I + W^T W / s2)^-1, mean = Sigma W^T (x - b) / s2.
    sigma = torch.linalg.inv(torch.eye(Z_DIM, dtype=torch.float64) + W.T @ W / log_s2.exp())
    A = sigma @ W.T / log_s2.exp()
    if exact_posterior:
        # diagonal q can only be exact when Sigma is diagonal: rotate W to make it so
        _, vectors = torch.linalg.eigh(W.T @ W)
        W = W @ vectors
        sigma = torch.linalg.inv(torch.eye(Z_DIM, dtype=torch.float64) + W.T @ W / log_s2.exp())
        A = sigma @ W.T / log_s2.exp()
        c, q_logvar = torch.zeros(Z_DIM, dtype=torch.float64), sigma.diagonal().log()
    else:
        # A shrunken, shifted, too wide proposal: a plausible but imperfect encoder.
        A = 0.8 * A
        c = torch.full((Z_DIM,), 0.1, dtype=torch.float64)
        q_logvar = (2.0 * sigma.diagonal()).log()
    return LinearGaussianVAE(W, b, log_s2, A, c, q_logvar)


def data_from(model: LinearGaussianVAE, n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, Z_DIM, generator=g, dtype=torch.float64)
    noise = torch.randn(n, X_DIM, generator=g, dtype=torch.float64)
    return model.decode(z) + noise * (0.5 * model.log_s2).exp()


def iw(model, x, k, seed=0, max_rows=4096):
    g = torch.Generator().manual_seed(seed)
    return ev.importance_weighted_log_px(model, x, k, g, max_rows)


# --------------------------------------------------------------- the estimator, exactly


def test_iwae_climbs_to_the_exact_log_likelihood_and_the_elbo_stays_below():
    model = linear_gaussian()
    x = data_from(model, 400)
    exact = model.exact_log_px(x)
    elbo = model.analytic_elbo(x)
    gap = exact - elbo  # = KL(q(z|x) || p(z|x)) per point
    assert (gap > 1e-3).all(), "the encoder must not be the exact posterior"
    means, last = [], None
    for k in (1, 10, 100, 1000):
        estimate = iw(model, x, k, seed=100 + k)  # data_from uses seed 1: keep the noise apart
        diff = estimate - exact
        stderr = diff.std() / math.sqrt(len(x))
        assert diff.mean() < 3 * stderr + 1e-9, f"k={k} exceeds log p(x) beyond noise"
        means.append(estimate.mean().item())
        last = diff
    assert means == sorted(means), f"the estimate must rise with k: {means}"
    assert -last.mean() < 0.02 * gap.mean(), "k=1000 should close 98 % of the ELBO gap"
    # k = 1 is an unbiased estimate of the ELBO: the sample mean agrees with the closed form
    one = iw(model, x, 1, seed=107)
    assert abs((one - elbo).mean()) < 4 * (one - elbo).std() / math.sqrt(len(x))
    assert means[0] < exact.mean().item() - 0.5 * gap.mean().item()


def test_chunked_estimate_agrees_with_one_chunk():
    """Uneven chunks of 7 samples vs all 600 at once: the same estimator, within its noise."""
    model = linear_gaussian()
    x = data_from(model, 200)
    whole, chunked = iw(model, x, 600, seed=21), iw(model, x, 600, seed=22, max_rows=7)
    diff = whole - chunked
    assert abs(diff.mean()) < 4 * diff.std() / math.sqrt(len(x)) + 1e-6
    assert abs((whole - model.exact_log_px(x)).mean()) < 0.05


def test_with_the_exact_posterior_every_weight_is_p_of_x():
    """w = p(x, z) / p(z|x) = p(x) for every z: any k and chunking must return log p(x)."""
    model = linear_gaussian(exact_posterior=True)
    x = data_from(model, 50)
    exact = model.exact_log_px(x)
    for k, rows in ((1, 4096), (13, 4096), (13, 3), (100, 51)):
        torch.testing.assert_close(iw(model, x, k, max_rows=rows), exact, atol=1e-9, rtol=0)


def test_decoder_never_sees_more_than_the_memory_bound():
    model = linear_gaussian()
    x = data_from(model, 10)
    seen = []
    decode = model.decode
    model.decode = lambda z: seen.append(z.shape[0]) or decode(z)
    iw(model, x, 5000, max_rows=64)
    assert max(seen) <= 64 and sum(seen) == 10 * 5000


def test_k1_equals_the_elbo_on_the_same_samples():
    """For the MLP VAE: log p(x|z) + log p(z) - log q(z|x) at the very z the estimator drew."""
    torch.manual_seed(0)
    model = build_model(MLPConfig(latent_dim=3, hidden_dim=32), (1, 28, 28)).eval()
    g = torch.Generator().manual_seed(11)
    x = torch.bernoulli(torch.rand(8, 1, 28, 28, generator=g))
    with torch.no_grad():
        got = ev.importance_weighted_log_px(model, x, 1, torch.Generator().manual_seed(3))
        mu, logvar = model.encode(x)
        eps = torch.randn((8, 1, 3), generator=torch.Generator().manual_seed(3))[:, 0]
        z = mu + eps * torch.exp(0.5 * logvar)
        recon = bernoulli_nll(model.decode(z), x)
        q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(1)
        p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    torch.testing.assert_close(got, -recon + p - q, rtol=1e-5, atol=1e-3)


# --------------------------------------------------------------- active units


def test_active_units_finds_the_collapsed_dimensions():
    """Dimensions 1 and 3 of the encoder's mean are switched off, dimension 4 nearly so."""
    torch.manual_seed(0)
    model = build_model(MLPConfig(latent_dim=5, hidden_dim=64), (1, 28, 28)).eval()
    with torch.no_grad():
        model.fc_mu.weight[[0, 2]] *= 20  # clearly active: variance of the mean near 1
        model.fc_mu.weight[[1, 3]] = 0.0
        model.fc_mu.bias[[1, 3]] = 0.5  # a constant mean is still collapsed
        model.fc_mu.weight[4] *= 1e-3  # varies, but far below the 0.01 threshold
    x = torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    mu, _ = ev.posterior_parameters(model, x)
    count, variance = ev.active_units(mu)
    assert count == 2
    assert variance[1] == variance[3] == 0
    assert 0 < variance[4] < 1e-4
    assert (variance[[0, 2]] > ev.ACTIVE_THRESHOLD).all()
    assert ev.active_units(mu, threshold=0.0)[0] == 3


# --------------------------------------------------------------- the report


def _tiny_split(n: int = 60) -> Split:
    g = torch.Generator().manual_seed(2)
    images = (torch.rand(n, 1, 28, 28, generator=g) ** 4 * 255).to(torch.uint8)
    return Split(images, torch.arange(n) % 10)


def test_evaluate_report_is_consistent_and_repeats():
    torch.manual_seed(0)
    model = build_model(MLPConfig(hidden_dim=32), (1, 28, 28)).eval()
    config = EvalConfig(k=50, batch_size=16, memory_mb=1)
    result = ev.evaluate(model, _tiny_split(), config, "dynamic", progress=False)
    again = ev.evaluate(model, _tiny_split(), config, "dynamic", progress=False)
    assert result.iwae == again.iwae and result.neg_elbo == again.neg_elbo
    elbo, iwae = result.neg_elbo, result.iwae
    assert elbo.nats == pytest.approx(elbo.recon + elbo.kl, rel=1e-5)
    assert elbo.bits_per_dim == pytest.approx(elbo.nats / (784 * math.log(2)))
    assert iwae.nll_bits_per_dim == pytest.approx(iwae.nll_nats / (784 * math.log(2)))
    assert iwae.nll_nats < elbo.nats + 3 * iwae.stderr_nats
    assert result.images == 60 and result.binarize == "dynamic"
    assert len(result.latent.kl_per_dim) == 2
    assert result.timing["images_x_k_per_second"] > 0
    assert EvalResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    grey = ev.evaluate(model, _tiny_split(), config, "none", progress=False)
    assert grey.neg_elbo != result.neg_elbo


@pytest.mark.parametrize("name", ["mlp", "conv"])
def test_bf16_estimate_stays_close_to_fp32(name):
    """Autocast runs the networks in bf16; the log weights are still summed in fp32."""
    torch.manual_seed(0)
    sizes = {"hidden_dim": 32} | ({"channels": 4} if name == "conv" else {})
    model = build_model(model_config(name, **sizes), (1, 28, 28)).eval()
    x = torch.bernoulli(torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(4)))
    with torch.no_grad():
        full = ev.importance_weighted_log_px(model, x, 64, torch.Generator().manual_seed(0))
        half = ev.importance_weighted_log_px(
            model, x, 64, torch.Generator().manual_seed(0), precision="bf16"
        )
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    torch.testing.assert_close(half, full, atol=2.0, rtol=0.01)


def _blind_model() -> VAE:
    """An MLP VAE whose encoder ignores x and whose decoder ignores z: q(z|x) is one fixed
    Gaussian and p(x|z) one fixed logit image l, so a protocol changes only the pixels scored,
    and -log p(x|z) = sum softplus(l) - x l is linear in them."""
    torch.manual_seed(0)
    model = build_model(MLPConfig(latent_dim=3, hidden_dim=16), (1, 28, 28)).eval()
    with torch.no_grad():
        model.fc1.weight.zero_()
        model.fc3.weight.zero_()
        model.fc3.bias.uniform_(0.5, 1.0)  # through the ReLU: h is fixed and nonzero
    return model


def _by_hand(model: VAE, images: torch.Tensor) -> dict[str, float]:
    """The -ELBO sums of the blind model on uint8 images: Bernoulli BCE against the fixed
    logits plus the fixed posterior's closed-form KL, for every image."""
    with torch.no_grad():
        logits = model.decode(torch.zeros(1, 3)).flatten().double()
        mu, logvar = model.encode(torch.zeros(1, 1, 28, 28))
    x = images.flatten(1).double() / 255
    recon = (torch.nn.functional.softplus(logits) - x * logits).sum()
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).double().sum() * images.shape[0]
    return {"loss": (recon + kl).item(), "recon": recon.item(), "kl": kl.item()}


def test_binarisation_protocols_score_different_pixels_and_each_repeats():
    """none scores the grey levels, dynamic one seeded Bernoulli draw of them (the same for a
    seed, another for another seed), static the split's fixed draw whatever the seed; each
    -ELBO agrees with the hand computation on the pixels that protocol scores."""
    model = _blind_model()
    grey = _tiny_split().images

    def score(images, binarize, seed):  # the generic path: the protocols are its subject
        sums = ev.elbo_sums(model, images, 25, seed=seed, binarize=binarize, fast=False)
        return {key: value.item() for key, value in sums.items()}

    # none: the grey levels themselves, and the default protocol
    assert score(grey, "none", 3) == pytest.approx(_by_hand(model, grey), rel=1e-6)
    plain = {k: v.item() for k, v in ev.elbo_sums(model, grey, 25, seed=3, fast=False).items()}
    assert plain == score(grey, "none", 3)
    # the MLP's fused path (the default for this model) sums in another order: float32 apart
    fused = {k: v.item() for k, v in ev.elbo_sums(model, grey, 25, seed=3).items()}
    assert fused == pytest.approx(_by_hand(model, grey), rel=1e-5)

    # dynamic: a binary draw with P(on) = pixel / 255, fixed by the seed
    draw = evaluation_images(grey, "dynamic", 3)
    assert set(draw.unique().tolist()) == {0, 255}
    assert torch.equal(draw, evaluation_images(grey, "dynamic", 3))
    other = evaluation_images(grey, "dynamic", 4)
    assert (draw != other).float().mean() > 0.1
    on, p = (draw == 255).double().mean().item(), grey.double().mean().item() / 255
    assert abs(on - p) < 4 * math.sqrt(p * (1 - p) / grey.numel())
    dynamic = score(grey, "dynamic", 3)
    assert dynamic == pytest.approx(_by_hand(model, draw), rel=1e-6)
    assert score(grey, "dynamic", 3) == dynamic  # repeats exactly
    assert score(grey, "dynamic", 4) == pytest.approx(_by_hand(model, other), rel=1e-6)
    # the two protocols differ by exactly -sum (x_draw - x_grey) l, the KL not at all
    with torch.no_grad():
        logits = model.decode(torch.zeros(1, 3)).flatten().double()
    shift = -((draw.double() - grey.double()).flatten(1) / 255 * logits).sum().item()
    assert abs(shift) > 10
    assert dynamic["recon"] - score(grey, "none", 3)["recon"] == pytest.approx(shift, rel=1e-4)
    assert dynamic["kl"] == pytest.approx(score(grey, "none", 3)["kl"], rel=1e-6)

    # static: one draw per (dataset, split), whatever the evaluation seed; scored as loaded
    fixed = static_binarize(grey, "mnist", "test")
    assert set(fixed.unique().tolist()) == {0, 255}
    assert torch.equal(fixed, static_binarize(grey, "mnist", "test"))
    assert not torch.equal(fixed, static_binarize(grey, "mnist", "train"))
    assert not torch.equal(fixed, draw)
    static = score(fixed, "static", 3)
    assert static == score(fixed, "static", 4) == score(fixed, "none", 3)
    assert static == pytest.approx(_by_hand(model, fixed), rel=1e-6)
    assert static["loss"] != dynamic["loss"] != score(grey, "none", 3)["loss"]


# --------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, mnist_dir):
    from vaekit.config import RunConfig

    config = RunConfig()
    config.data.data_dir, config.data.download, config.data.limit = str(mnist_dir), False, 1000
    config.train.epochs, config.train.device = 1, "cpu"
    config.train.pictures = config.train.plots = False
    return fit(config, tmp_path_factory.mktemp("eval") / "run", log=lambda _: None, progress=False)


def test_evaluate_command_prints_a_table_and_writes_json(small_run, capsys, tmp_path):
    out = tmp_path / "e.json"
    argv = ["evaluate", str(small_run), "-k", "20", "--limit", "200", "--no-fid", "-o", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "importance-weighted, k = 20" in printed and "bits/dim" in printed
    result = json.loads(out.read_text())
    assert result["images"] == 200 and result["fid"] is None
    assert result["config"]["k"] == 20 and result["binarize"] == "none"
    # default output: eval.json in the run folder
    assert main(["evaluate", str(small_run), "-k", "5", "--limit", "50", "--no-fid"]) == 0
    assert json.loads((small_run / "eval.json").read_text())["config"]["k"] == 5


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["-k", "0"], "k must be > 0"),
        (["--binarize", "sometimes"], "invalid choice"),
        (["--limit", "ten"], "must be int"),
    ],
)
def test_evaluate_command_errors_are_one_line(small_run, capsys, argv, fragment):
    assert main(["evaluate", str(small_run), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


def test_latent_statistics_cover_every_group():
    """One-group models: q(z|x)'s means and closed-form KL; hierarchical ones: all groups."""
    from vaekit.objectives import gaussian_kl_per_dim

    torch.manual_seed(0)
    x = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    mlp = build_model(MLPConfig(latent_dim=3, hidden_dim=32), (1, 28, 28)).eval()
    means, kl, sizes = ev.latent_statistics(mlp, x, batch_size=16)
    mu, logvar = ev.posterior_parameters(mlp, x)
    assert sizes == [3]
    torch.testing.assert_close(means, mu)
    torch.testing.assert_close(kl, gaussian_kl_per_dim(mu, logvar).mean(0))
    hvae = build_model(HVAEConfig(latent_dim=4, hidden_dim=32, groups=3), (1, 28, 28))
    means, kl, sizes = ev.latent_statistics(hvae.eval(), x, batch_size=16)
    assert sizes == [4, 4, 4] and means.shape == (40, 12) and (kl >= 0).all()
    top, _ = ev.posterior_parameters(hvae, x)
    torch.testing.assert_close(means[:, :4], top)  # the top group's mean is encode's
