"""The GPU paths give the CPU's numbers: training steps, mixed precision, evaluation,
checkpoints that move between devices.

These run only where CUDA is available (`scripts/gpu-check.sh` runs them on a lent GPU
machine); elsewhere pytest reports them as skipped, never as passed.
"""

from __future__ import annotations

import json

import pytest
import torch

import vaekit
from vaekit import api
from vaekit.config import EvalConfig
from vaekit.data import load_split, to_unit
from vaekit.evaluation.estimate import importance_weighted_estimates
from vaekit.training.loop import fit
from vaekit.training.state import build_state
from vaekit.training.step import train_step

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# TF32 is off in PyTorch's matmuls by default, so fp32 on the GPU differs from the CPU
# by summation order alone: this close after a few steps.
FP32_REL = 1e-4
# Mixed precision against fp32, per-sample loss over a few steps (as on the CPU for bf16).
MIXED_REL = 0.005


def _steps(config, batches, device: str, precision: str = "fp32") -> tuple[list[float], dict, int]:
    """vaekit's training step on `device`, the same noise for every device (drawn on the CPU).

    Returns the per-sample losses, the final weights and the steps skipped as non-finite.
    """
    config.train.device, config.train.precision = device, precision
    state = build_state(config, (1, 28, 28))
    generator = torch.Generator().manual_seed(1)
    losses = []
    for x in batches:
        noise = torch.randn(x.shape[0], config.model.latent_dim, generator=generator)
        loss = train_step(state, x.to(device), noise.to(device))
        losses.append(loss.item() / x.shape[0])
    weights = {k: v.detach().cpu() for k, v in state.model.state_dict().items()}
    return losses, weights, int(state.sums["skipped"].item())


def test_fp32_steps_on_the_gpu_match_the_cpu(small_config, mnist_batches):
    batches = mnist_batches(8)
    cpu_losses, cpu_weights, _ = _steps(small_config, batches, "cpu")
    gpu_losses, gpu_weights, skipped = _steps(small_config, batches, "cuda")
    assert skipped == 0
    assert gpu_losses == pytest.approx(cpu_losses, rel=FP32_REL)
    # Adam's normalised update moves a weight whose gradient is mostly rounding by up to
    # lr (1e-3) a step either way, so the weights get one step's tolerance; the losses
    # above are the sharp check.
    for key, value in cpu_weights.items():
        torch.testing.assert_close(gpu_weights[key], value, rtol=1e-3, atol=1e-3)


def test_bf16_steps_on_the_gpu_stay_near_fp32(small_config, mnist_batches):
    batches = mnist_batches(8)
    fp32, _, _ = _steps(small_config, batches, "cuda")
    bf16, weights, skipped = _steps(small_config, batches, "cuda", "bf16")
    assert skipped == 0
    assert bf16 == pytest.approx(fp32, rel=MIXED_REL)
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_fp16_steps_on_the_gpu_train_through_the_grad_scaler(small_config, mnist_batches):
    """The first loss is a forward pass on equal weights: near fp32's. The scaler starts
    at 2^16 and halves on overflow, skipping those steps (a skipped step sets the run one
    update behind, so later losses are not compared one to one); training still goes on."""
    batches = mnist_batches(16)
    fp32, _, _ = _steps(small_config, batches, "cuda")
    fp16, weights, skipped = _steps(small_config, batches, "cuda", "fp16")
    assert fp16[0] == pytest.approx(fp32[0], rel=MIXED_REL)
    assert skipped <= 4
    assert fp16[-1] < 0.8 * fp16[0]
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_fp16_uses_a_grad_scaler_and_bf16_does_not(small_config):
    small_config.train.device = "cuda"
    small_config.train.precision = "fp16"
    assert build_state(small_config, (1, 28, 28)).scaler is not None
    small_config.train.precision = "bf16"
    assert build_state(small_config, (1, 28, 28)).scaler is None


def test_a_run_trained_on_the_gpu_resumes_and_evaluates_on_the_cpu(small_config, tmp_path):
    """The main job on a GPU, pictures and plots included; its run folder then serves a
    CPU-only user (loading, resuming)."""
    small_config.train.device = "cuda"
    small_config.train.epochs = 1
    small_config.train.pictures = small_config.train.plots = True
    run = vaekit.train(small_config, tmp_path / "run", log=lambda _: None, progress=False)
    for name in ("samples.png", "reconstructions.png", "latent_scatter.png", "loss_curves.png"):
        assert (run / name).stat().st_size > 1000, name
    model = api.load(run, "cpu")
    assert next(model.parameters()).device.type == "cpu"
    # resumed on the CPU for a second epoch: the GPU's RNG state must not stop it
    fit(
        small_config,
        run,
        resume=True,
        resume_overrides={"epochs": 2, "device": "cpu"},
        log=lambda _: None,
        progress=False,
    )
    assert (run / "metrics.jsonl").read_text().count("\n") == 2


def test_the_likelihood_estimate_on_the_gpu_agrees_with_the_cpu(small_config, tmp_path, mnist_dir):
    """Different devices draw different samples: the two estimates agree within their
    Monte Carlo error, which at k = 1000 is well under a nat per image on average."""
    small_config.train.device = "cuda"
    run = fit(small_config, tmp_path / "run", log=lambda _: None, progress=False)
    x = to_unit(load_split("mnist", "test", mnist_dir, False).images[:40])
    config = EvalConfig(k=1000, fid=False)
    cpu = importance_weighted_estimates(api.load(run, "cpu"), x, config, progress=False)
    gpu = importance_weighted_estimates(api.load(run, "cuda"), x.cuda(), config, progress=False)
    assert gpu.device.type == "cuda"
    assert abs(gpu.mean().item() - cpu.mean().item()) < 0.5
    assert (gpu.cpu() - cpu).abs().max().item() < 3.0


def test_the_shipped_hierarchical_model_runs_every_command_on_the_gpu(tmp_path, mnist_dir):
    """evaluate (in each precision), sample and reconstruct with --device cuda on the shipped
    mnist-hvae. The same seed draws the same samples in every precision on one device, so
    bf16 and fp16 differ from fp32 by rounding alone; the CPU draws others, so it agrees
    within Monte Carlo error (k = 200 on 200 images: a few hundredths of a nat)."""
    from vaekit.cli import main

    def nll(device: str, precision: str) -> float:
        out = tmp_path / f"eval-{device}-{precision}.json"
        args = ["evaluate", "--pretrained", "mnist-hvae", "--device", device, "-k", "200"]
        args += ["--data-dir", str(mnist_dir), "--limit", "200", "--no-fid", "--no-progress"]
        assert main([*args, "--precision", precision, "-o", str(out)]) == 0
        report = json.loads(out.read_text())
        assert report["device"].startswith(device)
        return report["iwae"]["nll_nats"]

    fp32 = nll("cuda", "fp32")
    assert abs(nll("cuda", "bf16") - fp32) < 0.5
    assert abs(nll("cuda", "fp16") - fp32) < 0.5
    assert abs(nll("cpu", "fp32") - fp32) < 1.0
    common = ["--pretrained", "mnist-hvae", "--device", "cuda"]
    assert main(["sample", *common, "-o", str(tmp_path / "samples.png")]) == 0
    recon = ["reconstruct", *common, "--data-dir", str(mnist_dir)]
    assert main([*recon, "-o", str(tmp_path / "recon.png")]) == 0
    assert (tmp_path / "samples.png").stat().st_size > 1000
    assert (tmp_path / "recon.png").stat().st_size > 1000
