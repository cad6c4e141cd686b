"""VQ-VAE and its learned prior, against references: the straight-through gradient, the
nearest code by brute force, the EMA step and dead-code restarts by hand, perplexity on
known histograms, the prior's causality by autograd, sampling a learnt pattern, resume."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from vaekit import api, checkpoint, pictures, report
from vaekit.cli import main
from vaekit.codebook import (
    code_counts,
    ema_update,
    nearest_codes,
    perplexity,
    restart_dead_codes,
    usage,
)
from vaekit.config import EvalConfig, RunConfig, model_config
from vaekit.errors import ConfigError
from vaekit.export import export_model
from vaekit.models import build_model
from vaekit.models.base import Codes, VAEOutput
from vaekit.models.vq import Quantiser
from vaekit.models.vqprior import CodePrior
from vaekit.objectives import code_kl, commitment_loss, training_terms
from vaekit.runfolder import RunFolder
from vaekit.training.loop import fit


def _quiet(*_):
    return None


@pytest.fixture
def one_thread():
    """Hundreds of tiny steps: one thread, as two stall on a busy machine (restored after)."""
    torch.set_num_threads(1)


def _vq(**values):
    return build_model(
        model_config("vq", codebook_size=8, code_dim=3, channels=4, **values), (1, 8, 8)
    )


# --------------------------------------------------------------------------- quantiser


def test_nearest_codes_match_a_brute_force_search():
    torch.manual_seed(0)
    z, codebook = torch.randn(200, 5), torch.randn(17, 5)
    expected = [min(range(17), key=lambda j: float(((row - codebook[j]) ** 2).sum())) for row in z]
    assert nearest_codes(z, codebook).tolist() == expected


def test_ema_step_matches_a_hand_computation():
    """K=2, D=1, decay 1/2: N = (1.5, 1), m = (2, 5), e = m / N = (4/3, 5) (no smoothing)."""
    size, total = torch.tensor([1.0, 1.0]), torch.zeros(2, 1)
    z, indices = torch.tensor([[1.0], [3.0], [10.0]]), torch.tensor([0, 0, 1])
    n, m, codebook = ema_update(size, total, z, indices, 0.5, epsilon=0.0)
    assert n.tolist() == [1.5, 1.0]
    assert m.tolist() == [[2.0], [5.0]]
    assert codebook[:, 0].tolist() == pytest.approx([4 / 3, 5.0])
    # Laplace smoothing moves it by O(epsilon) only, and keeps an unused code finite
    _, _, smoothed = ema_update(size, total, z, indices, 0.5)
    assert smoothed[:, 0].tolist() == pytest.approx([4 / 3, 5.0], rel=1e-4)
    _, _, idle = ema_update(torch.zeros(3), torch.zeros(3, 1), z, indices, 0.5)
    assert torch.isfinite(idle).all() and idle[2, 0] == 0


def test_dead_codes_restart_at_encoder_outputs():
    size = torch.tensor([5.0, 0.1, 3.0, 0.0])
    total = torch.arange(8.0).reshape(4, 2)
    codebook = total / size.clamp(min=1)[:, None]
    z = torch.tensor([[10.0, 11.0], [20.0, 21.0], [30.0, 31.0]])
    n, m, e, count = restart_dead_codes(size, total, codebook, z, threshold=1.0)
    assert count == 2
    assert n.tolist() == [5.0, 1.0, 3.0, 1.0]
    for code in (1, 3):  # each moved onto one of the batch's outputs, with m = e
        assert any(torch.equal(e[code], row) for row in z)
        assert torch.equal(m[code], e[code])
    for code in (0, 2):  # the living ones are untouched
        assert torch.equal(e[code], codebook[code]) and torch.equal(m[code], total[code])
    assert restart_dead_codes(size, total, codebook, z, threshold=0.05)[3] == 1  # only N = 0


def test_quantiser_module_updates_only_in_training_and_counts_restarts():
    torch.manual_seed(0)
    quantiser = Quantiser(4, 2, 0.9, 0.5)
    z_e = torch.randn(2, 2, 3, 3)
    quantiser.eval()
    before = quantiser.codebook.clone()
    indices, z_q = quantiser(z_e)
    assert torch.equal(quantiser.codebook, before)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 2)
    assert torch.equal(indices.reshape(-1), nearest_codes(flat, before))
    assert torch.equal(z_q.permute(0, 2, 3, 1).reshape(-1, 2), before[indices.reshape(-1)])
    quantiser.train()
    quantiser(z_e)  # counts start at 0: codes below 0.5 after this step restart at outputs
    n = 0.1 * code_counts(nearest_codes(flat, before), 4)
    dead = n < 0.5
    assert int(quantiser.restarts) == int(dead.sum()) > 0
    assert quantiser.cluster_size[dead].tolist() == [1.0] * int(dead.sum())


def test_perplexity_of_known_histograms():
    assert perplexity(torch.full((64,), 7.0)) == pytest.approx(64)
    assert perplexity(torch.tensor([0.0, 12.0, 0.0])) == pytest.approx(1.0)
    p = torch.tensor([0.25, 0.25, 0.5])
    assert perplexity(torch.tensor([1.0, 1.0, 2.0])) == pytest.approx(
        math.exp(-(p * p.log()).sum().item())
    )
    assert usage(torch.tensor([0.0, 3.0, 1.0, 0.0])) == 0.5


# --------------------------------------------------------------------------- model, objective


def test_straight_through_gives_the_encoder_the_decoder_input_gradient():
    torch.manual_seed(0)
    model = _vq().train()
    seen = {}

    def keep_input(_module, args):
        args[0].retain_grad()
        seen["input"] = args[0]

    model.decoder.register_forward_pre_hook(keep_input)
    x = torch.rand(3, 1, 8, 8)
    out = model(x)
    out.codes.z_e.retain_grad()
    (out.params * torch.randn_like(out.params)).sum().backward()
    assert seen["input"].grad.abs().sum() > 0
    assert torch.equal(out.codes.z_e.grad, seen["input"].grad)
    # the decoder saw the codes themselves, not the encoder's outputs
    assert torch.allclose(seen["input"], out.codes.z_q)


def test_vq_objective_is_recon_plus_kl_plus_beta_commitment():
    torch.manual_seed(0)
    z_e, z_q = torch.randn(2, 3, 2, 2), torch.randn(2, 3, 2, 2)
    indices = torch.randint(5, (2, 2, 2))
    x, params = torch.rand(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    codes = Codes(z_e, z_q, indices, 5, commitment=0.25)
    terms = training_terms(x, VAEOutput([], params, codes), objective="vq")
    recon = torch.nn.functional.binary_cross_entropy_with_logits(params, x, reduction="none")
    recon = recon.sum(dim=(1, 2, 3))
    commit = ((z_e - z_q) ** 2).sum(dim=(1, 2, 3))
    assert torch.allclose(terms["recon"], recon)
    assert torch.allclose(terms["kl"], torch.full((2,), 4 * math.log(5)))  # uniform prior
    assert torch.allclose(terms["loss"], recon + 4 * math.log(5))
    assert terms["objective"].item() == pytest.approx(
        (recon.sum() + 8 * math.log(5) + 0.25 * commit.sum()).item(), rel=1e-6
    )
    assert torch.allclose(commitment_loss(codes), commit)
    logits = torch.randn(2, 5, 2, 2)  # a learned prior: -sum_i log softmax(logits_i)[c_i]
    learned = dataclasses.replace(codes, prior_logits=logits)
    log_p = logits.log_softmax(dim=1).gather(1, indices[:, None])[:, 0]
    assert torch.allclose(code_kl(learned), -log_p.sum(dim=(1, 2)))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned"])
@pytest.mark.parametrize("name", ["vq", "vq-prior"])
def test_generate_and_reconstruct_give_the_likelihoods_parameters(name, likelihood):
    """(n, P*C, H, W) for RGB images too; the objective scores them finitely."""
    extra = {"codes_from": "unused"} if name == "vq-prior" else {}
    sizes = {"codebook_size": 8, "code_dim": 3, "channels": 4, "likelihood": likelihood}
    model = build_model(model_config(name, **sizes, **extra), (3, 32, 32))
    p = 2 if likelihood == "gaussian-learned" else 1
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        generated = model.generate(5, torch.Generator().manual_seed(0))
        out = model(x)
    assert generated.shape == (5, p * 3, 32, 32)
    assert model.reconstruct(x).shape == out.params.shape == (4, p * 3, 32, 32)
    assert out.codes.indices.shape == (4, 8, 8)
    assert torch.isfinite(training_terms(x, out, model.likelihood.nll, "vq")["objective"])


def test_vq_learns_a_fixed_batch(one_thread):
    """40 Adam steps on 64 MNIST-sized random blobs: the reconstruction term falls by 15%."""
    torch.manual_seed(0)
    model = build_model(model_config("vq", codebook_size=16, code_dim=4, channels=8), (1, 28, 28))
    x = (torch.rand(64, 1, 7, 7) > 0.5).float().repeat_interleave(4, 2).repeat_interleave(4, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    recon = []
    for _ in range(40):
        terms = training_terms(x, model(x), model.likelihood.nll, "vq")
        optimizer.zero_grad()
        terms["objective"].backward()
        optimizer.step()
        recon.append(terms["recon"].mean().item())
    assert sum(recon[-5:]) < 0.85 * sum(recon[:5]), (recon[:5], recon[-5:])
    assert int(model.quantiser.restarts) > 0


def test_the_families_refuse_each_others_objectives():
    with pytest.raises(ConfigError, match="model vq is trained with --objective vq"):
        RunConfig.from_dict({"model": {"name": "vq"}})
    with pytest.raises(ConfigError, match="model mlp is trained with --objective elbo or iwae"):
        RunConfig.from_dict({"objective": {"objective": "vq"}})
    with pytest.raises(ConfigError, match="needs --codes-from"):
        model_config("vq-prior")


# --------------------------------------------------------------------------- prior


def test_prior_logits_are_causal_by_autograd():
    torch.manual_seed(0)
    prior = CodePrior(6, 10, 16, 2, 2)
    onehot = torch.nn.functional.one_hot(torch.randint(6, (1, 10)), 6).float().requires_grad_()
    logits = prior(onehot)
    for i in range(10):
        (grad,) = torch.autograd.grad(logits[0, i].sum(), onehot, retain_graph=True)
        depends = grad[0].abs().sum(dim=1) > 0
        assert not depends[i:].any(), i  # nothing at or after position i
        assert depends[:i].all(), i  # every earlier position


def test_cached_sampling_scores_what_the_full_pass_scores():
    torch.manual_seed(0)
    prior = CodePrior(5, 7, 16, 2, 4).eval()
    generator = torch.Generator().manual_seed(3)
    codes = prior.sample(2000, generator)
    # the empirical first-position distribution follows the model's p(c_0)
    p0 = prior(torch.zeros(1, 1, 5))[0, 0].softmax(dim=-1)
    empirical = code_counts(codes[:, 0], 5) / 2000
    assert torch.allclose(empirical, p0, atol=0.04)


def test_a_prior_trained_on_one_pattern_samples_it(one_thread):
    """Cross-entropy driven below 1e-4 nats a position: every draw is the pattern."""
    torch.manual_seed(0)
    pattern = torch.tensor([3, 1, 4, 1, 5, 0, 2, 6, 5, 3, 5, 2])
    prior = CodePrior(7, 12, 32, 2, 4)
    optimizer = torch.optim.Adam(prior.parameters(), lr=1e-2)
    onehot = torch.nn.functional.one_hot(pattern, 7).float()[None]
    for _ in range(1000):
        loss = torch.nn.functional.cross_entropy(prior(onehot)[0], pattern)
        if loss.item() < 1e-4:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 1e-4
    samples = prior.eval().sample(50, torch.Generator().manual_seed(0))
    assert (samples == pattern).all()


# --------------------------------------------------------------------------- runs


def _config(small_config, **model):
    config = RunConfig.from_dict(small_config.to_dict())  # a copy: tests change its sections
    config.objective.objective = "vq"
    config.model = model_config("vq", codebook_size=16, code_dim=4, channels=8, **model)
    config.data.limit = 512
    return config


def _prior_config(small_config, vq_run):
    config = _config(small_config)
    config.model = model_config(
        "vq-prior", codes_from=str(vq_run), prior_width=16, prior_layers=1, prior_heads=2
    )
    return config


@pytest.fixture(scope="module")
def vq_runs(tmp_path_factory, mnist_dir):
    """A VQ-VAE run and a prior run on its codes, 2 epochs of 512 images each."""
    root = tmp_path_factory.mktemp("vq")
    base = RunConfig()
    base.data.data_dir, base.data.download = str(mnist_dir), False
    base.train.epochs, base.train.device = 2, "cpu"
    base.train.pictures = base.train.plots = False
    vq = fit(_config(base), root / "vq", log=_quiet, progress=False)
    prior = fit(_prior_config(base, vq), root / "prior", log=_quiet, progress=False)
    return base, vq, prior


def test_runs_record_codebook_metrics_and_the_prior_lowers_the_bound(vq_runs):
    _, vq, prior = vq_runs
    first, second = RunFolder(vq).read_metrics(), RunFolder(prior).read_metrics()
    uniform = 49 * math.log(16)  # a 7 x 7 grid of 16 codes under the uniform prior
    for record in first:
        assert record["test_kl"] == pytest.approx(uniform) == record["train_kl"]
        assert 1 <= record["test_perplexity"] <= 16 and record["test_codebook_size"] == 16
        assert 0 < record["test_code_usage"] <= 1
    # the frozen VQ-VAE: the same codes and reconstructions, now with a learnt p(codes)
    assert second[-1]["test_recon"] == first[-1]["test_recon"]
    assert second[-1]["test_perplexity"] == first[-1]["test_perplexity"]
    assert second[-1]["test_kl"] < second[0]["test_kl"] < uniform
    first_state, second_state = checkpoint.load(vq), checkpoint.load(prior)
    for key, value in first_state.model_state.items():
        assert torch.equal(second_state.model_state[f"vq.{key}"], value), key
    adopted = second_state.config.model
    assert (adopted.codebook_size, adopted.code_dim, adopted.channels) == (16, 4, 8)


@pytest.mark.parametrize("stage", ["vq", "vq-prior"])
def test_resume_is_exact(vq_runs, tmp_path, untimed_metrics, stage):
    """2 epochs straight == 1 epoch then a resume, codebook buffers and metrics included."""
    base, vq, _ = vq_runs
    config = _config(base) if stage == "vq" else _prior_config(base, vq)
    straight = fit(config, tmp_path / "straight", log=_quiet, progress=False)
    config.train.epochs = 1
    resumed = fit(config, tmp_path / "resumed", log=_quiet, progress=False)
    fit(config, resumed, resume=True, resume_overrides={"epochs": 2}, log=_quiet, progress=False)
    a, b = checkpoint.load(straight).model_state, checkpoint.load(resumed).model_state
    assert any("quantiser.cluster_size" in key for key in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert untimed_metrics(straight) == untimed_metrics(resumed)


def test_evaluate_reports_bits_per_dim_from_the_prior_and_the_decoder(vq_runs):
    _, _, prior = vq_runs
    result = api.evaluate_model(prior, EvalConfig(k=50, fid=False, limit=100), progress=False)
    codes = result.extra["codes"]
    assert result.iwae.k == 1  # q is a point mass: one importance sample is the bound
    assert result.iwae.nll_nats == pytest.approx(result.neg_elbo.nats, rel=1e-6)
    assert codes["bits_per_dim"] == pytest.approx(result.neg_elbo.bits_per_dim)
    pixels_ln2 = 784 * math.log(2)
    assert codes["prior_bits_per_dim"] == pytest.approx(result.neg_elbo.kl / pixels_ln2)
    assert codes["recon_bits_per_dim"] + codes["prior_bits_per_dim"] == pytest.approx(
        codes["bits_per_dim"]
    )
    assert 1 <= codes["perplexity"] <= 16 and result.latent.dim == 0
    rows = {row[0]: row[1] for row in report.eval_rows(result)}
    assert rows["codebook perplexity"] == f"{codes['perplexity']:.2f} of 16"


def test_sample_and_reconstruct_decode_the_prior_and_the_codes(vq_runs, tmp_path):
    _, _, prior = vq_runs
    model = api.load(prior)
    with torch.no_grad():
        codes = model.prior_net.sample(8, torch.Generator().manual_seed(5)).reshape(8, 7, 7)
        expected = torch.sigmoid(model.vq.decode_indices(codes))
        assert torch.equal(pictures.sample(model, 8, seed=5), expected)
        x = torch.rand(4, 1, 28, 28)
        z_q = model.vq.quantiser.codebook[model.vq.quantise(x).indices].permute(0, 3, 1, 2)
        assert torch.equal(pictures.reconstruct(model, x), torch.sigmoid(model.vq.decoder(z_q)))
    for argv in (["sample", str(prior), "-n", "8"], ["reconstruct", str(prior), "-n", "8"]):
        out = tmp_path / f"{argv[0]}.png"
        assert main([*argv, "-o", str(out)]) == 0 and out.stat().st_size > 0


def test_export_folder_round_trips_and_onnx_is_refused(vq_runs, tmp_path):
    _, vq, _ = vq_runs
    assert main(["export", str(vq), "--format", "folder", "-o", str(tmp_path / "f")]) == 0
    x = torch.rand(3, 1, 28, 28)
    a, b = api.load(vq), api.load(tmp_path / "f")
    assert torch.equal(pictures.reconstruct(a, x), pictures.reconstruct(b, x))
    with pytest.raises(ConfigError, match="discrete codes"):
        export_model(vq, tmp_path / "o", "onnx")
    for command in ("encode", "plot", "explore"):  # Gaussian latents only: one-line errors
        argv = [command, str(vq)] + (["-o", str(tmp_path / "e.npz")] if command == "encode" else [])
        assert main(argv) == 2, command
