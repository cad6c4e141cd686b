"""The MLP fast path (training/fast_mlp.py, evaluation/fast_mlp.py, vaekit.native) gives the
autograd path's numbers: gradients on the same batch and noise, weights after several
steps, the losses of whole runs, resume bit for bit, bad steps skipped, and the same
arithmetic as PyTorch ops when no compiler is found."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch

from vaekit import checkpoint, native, notices
from vaekit.config import EvalConfig
from vaekit.data import load_data, load_split, to_unit
from vaekit.evaluation import estimate
from vaekit.evaluation import fast_mlp as fast_eval
from vaekit.native import blas
from vaekit.objectives import training_terms
from vaekit.training import fast_mlp
from vaekit.training.loop import finish_epoch, fit, train_epoch
from vaekit.training.state import build_state, save_checkpoint
from vaekit.training.step import train_step


class _Train:
    def __init__(self, images: torch.Tensor) -> None:
        self.images = images


@pytest.fixture(params=["native-openblas", "native-torch", "torch"])
def engine(request, monkeypatch) -> Iterator[str]:
    """Every engine of the fast step: the C kernels on each sgemm they may call
    (numpy's OpenBLAS, PyTorch's BLAS), and PyTorch ops (no compiler)."""
    if request.param.startswith("native"):
        sgemm = request.param.removeprefix("native-")
        if sgemm == "openblas" and blas.openblas_sgemm(native.cache_dir()) is None:
            pytest.skip("numpy ships no OpenBLAS here")
        monkeypatch.setenv(blas.CHOICE_VARIABLE, sgemm)
        native.load.cache_clear()
        if not native.available():
            pytest.skip("no C compiler here")
        assert native.load().sgemm.name.startswith(sgemm)
    else:
        monkeypatch.setattr(fast_mlp.native, "load", lambda: None)
    yield request.param.split("-")[0]
    if request.param.startswith("native"):
        native.load.cache_clear()  # the next test loads with its own VAEKIT_SGEMM


@pytest.fixture
def images(mnist_dir) -> torch.Tensor:
    return load_split("mnist", "train", mnist_dir, False).subset(512).images


def _autograd_grads(state, x, eps, weight) -> tuple[float, list[torch.Tensor]]:
    state.model.zero_grad()
    out = state.model(x, noise=eps)
    terms = training_terms(x, out, state.model.likelihood.nll, "elbo", weight, 0.0)
    terms["objective"].backward()
    return terms["recon"].sum().item(), [p.grad.clone() for p in state.fast.params]


@pytest.mark.parametrize("weight", [1.0, 0.25])
def test_gradients_match_autograd_on_the_same_batch_and_noise(small_config, images, engine, weight):
    state = build_state(small_config, (1, 28, 28))
    state.fast = fast_mlp.fast_step(state, _Train(images))
    assert (state.fast.lib is None) == (engine == "torch")
    order = torch.randperm(512, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(11)
    state.fast.load_batch(order, 128, 128)
    with torch.no_grad():
        recon, _, squares = state.fast.forward_backward(128, weight, True)
    x = to_unit(images[order[128:256]])
    torch.manual_seed(11)
    eps = torch.randn(128, 2)
    assert torch.equal(state.fast.buf["eps"], eps) and torch.equal(
        state.fast.buf["x"], x.flatten(1)
    )
    reference_recon, grads = _autograd_grads(state, x, eps, weight)
    assert recon == pytest.approx(reference_recon, rel=1e-6)
    for got, want in zip(state.fast.grads, grads, strict=True):
        assert ((got - want).norm() / want.norm()).item() < 1e-5
    want_norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item()
    assert squares**0.5 == pytest.approx(want_norm, rel=1e-5)


@pytest.mark.parametrize("clip", [None, 100.0])
def test_weights_after_several_steps_match_the_autograd_path(small_config, images, engine, clip):
    small_config.train.max_grad_norm = clip  # clipping as clip_grad_norm_ does, when set
    plain, fast = build_state(small_config, (1, 28, 28)), build_state(small_config, (1, 28, 28))
    fast.fast = fast_mlp.fast_step(fast, _Train(images))
    order = torch.randperm(512, generator=torch.Generator().manual_seed(5))
    for step in range(4):
        torch.manual_seed(100 + step)
        with torch.no_grad():
            fast.fast.step(order, step * 128, 128, 1.0)
        torch.manual_seed(100 + step)
        x = to_unit(images[order[step * 128 : (step + 1) * 128]])
        train_step(plain, x, plain.model.noise(128))
    for (name, want), got in zip(
        plain.model.state_dict().items(), fast.model.state_dict().values(), strict=True
    ):
        assert ((got - want).norm() / want.norm()).item() < 1e-5, name
    steps = [s["step"].item() for s in fast.optimizer.state_dict()["state"].values()]
    assert steps == [4.0] * 10


@pytest.mark.parametrize("skip", [None, 50.0])
def test_several_steps_in_one_call_match_the_autograd_path(small_config, images, engine, skip):
    """The C loop's batches, noise (drawn up front, in order), KL weights, bad-step rule
    and Adam: four steps in one call against four autograd steps."""
    small_config.train.skip_grad_norm = skip  # 50: some of these early steps are skipped
    plain, fast = build_state(small_config, (1, 28, 28)), build_state(small_config, (1, 28, 28))
    fast.fast = fast_mlp.fast_step(fast, _Train(images))
    order = torch.randperm(512, generator=torch.Generator().manual_seed(5))[:500]
    weights = [1.0, 0.5, 0.25, 0.75]
    torch.manual_seed(7)
    with torch.no_grad():
        out = fast.fast.steps(order, 0, 500, weights)
    torch.manual_seed(7)
    want_bad = []
    for step, weight in enumerate(weights):
        rows = order[step * 128 : (step + 1) * 128]  # the last step has 116
        skipped = plain.sums["skipped"].item()
        loss = train_step(plain, to_unit(images[rows]), plain.model.noise(len(rows)), weight)
        want_bad.append(plain.sums["skipped"].item() > skipped)
        assert out[step, 0] + weight * out[step, 1] == pytest.approx(loss.item(), rel=1e-5)
    assert [bool(b) for b in out[:, 2]] == want_bad
    assert (skip is None) == (not any(want_bad))
    for (name, want), got in zip(
        plain.model.state_dict().items(), fast.model.state_dict().values(), strict=True
    ):
        assert ((got - want).norm() / want.norm()).item() < 1e-5, name


def _run(config, path, **train):
    config = copy.deepcopy(config)
    for key, value in train.items():
        setattr(config.train, key, value)
    fit(config, path, log=lambda _: None, progress=False)
    return checkpoint.load(path / checkpoint.FILENAME)


def test_a_run_takes_the_fast_path_and_lands_on_the_autograd_runs_losses(
    small_config, tmp_path, untimed_metrics
):
    small_config.data.limit = 1000
    fast = _run(small_config, tmp_path / "fast")
    plain = _run(small_config, tmp_path / "plain", fast_path=False)
    a, b = untimed_metrics(tmp_path / "fast"), untimed_metrics(tmp_path / "plain")
    for got, want in zip(a, b, strict=True):
        for key in ("train_loss", "train_recon", "train_kl", "test_loss", "test_recon"):
            assert got[key] == pytest.approx(want[key], rel=1e-4), key
    for name, want in plain.model_state.items():
        assert torch.allclose(fast.model_state[name], want, rtol=1e-3, atol=1e-5), name


@pytest.mark.slow
def test_ten_epochs_of_the_seed_land_within_half_a_percent(small_config, tmp_path, untimed_metrics):
    small_config.data.limit, small_config.train.epochs = None, 10
    _run(small_config, tmp_path / "fast")
    _run(small_config, tmp_path / "plain", fast_path=False)
    fast, plain = untimed_metrics(tmp_path / "fast")[-1], untimed_metrics(tmp_path / "plain")[-1]
    assert fast["train_loss"] == pytest.approx(plain["train_loss"], rel=0.005)
    assert fast["test_loss"] == pytest.approx(plain["test_loss"], rel=0.005)


def test_resume_on_the_fast_path_is_bit_identical(small_config, tmp_path, untimed_metrics):
    small_config.data.limit = 1000
    whole = _run(small_config, tmp_path / "whole")
    _run(small_config, tmp_path / "cut", epochs=1)
    quiet = dict(log=lambda _: None, progress=False)
    fit(small_config, tmp_path / "cut", resume=True, resume_overrides={"epochs": 2}, **quiet)
    cut = checkpoint.load(tmp_path / "cut" / checkpoint.FILENAME)
    for name, tensor in whole.model_state.items():
        assert torch.equal(cut.model_state[name], tensor), name
    saved, restored = whole.optimizer_state["state"], cut.optimizer_state["state"]
    assert sorted(saved) == sorted(restored) == list(range(10))
    for index, tensors in saved.items():
        assert all(torch.equal(tensors[key], restored[index][key]) for key in tensors)
    assert untimed_metrics(tmp_path / "whole") == untimed_metrics(tmp_path / "cut")


class _StopAfter:
    """A stop request that arrives at the `steps`-th time the loop asks (the fast loop asks
    after each call into the C loop: every DIVERGENCE_CHECK_EVERY = 16 steps)."""

    def __init__(self, steps: int) -> None:
        self.left = steps

    def __bool__(self) -> bool:
        self.left -= 1
        return self.left <= 0


def test_a_stop_mid_epoch_then_resume_is_bit_identical(small_config, tmp_path):
    small_config.data.limit = 3000  # 24 steps: a stop after the first call lands at 16
    train = load_data(small_config.data, "train")

    def started(ckpt=None):
        state = build_state(small_config, (1, 28, 28), ckpt)
        state.fast = fast_mlp.fast_step(state, train)
        return state

    whole = started()
    assert train_epoch(whole, train, tmp_path, False, False)
    cut = started()
    assert not train_epoch(cut, train, tmp_path, _StopAfter(1), False) and cut.batch == 16
    save_checkpoint(cut, tmp_path, (1, 28, 28))
    resumed = started(checkpoint.load(tmp_path / checkpoint.FILENAME))
    assert resumed.batch == 16
    assert train_epoch(resumed, train, tmp_path, False, False)
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name
    assert finish_epoch(resumed) == finish_epoch(whole)


def test_bad_steps_are_skipped_as_on_the_autograd_path(small_config, tmp_path, untimed_metrics):
    small_config.train.epochs, small_config.train.max_bad_steps = 1, 1000
    results = {}
    for fast_path in (True, False):
        path = tmp_path / str(fast_path)
        _run(small_config, path, skip_grad_norm=15000.0, fast_path=fast_path)
        results[fast_path] = untimed_metrics(path)[0]["train_skipped"]
    assert 0 < results[True] == results[False] < 16
    frozen = _run(small_config, tmp_path / "all", skip_grad_norm=1e-3)
    start = build_state(small_config, (1, 28, 28)).model.state_dict()
    assert all(torch.equal(frozen.model_state[k], v) for k, v in start.items())


def test_without_a_compiler_the_pytorch_step_runs_with_one_notice(
    small_config, tmp_path, monkeypatch, capsys
):
    native.load.cache_clear()
    monkeypatch.setattr(notices, "_seen", set())  # the notice is once per process
    monkeypatch.setenv(native.DISABLE_VARIABLE, "1")
    try:
        assert native.load() is None
        small_config.train.epochs = 1
        _run(small_config, tmp_path / "torch")
    finally:
        native.load.cache_clear()
    assert capsys.readouterr().err.count(fast_mlp.NO_COMPILER_NOTICE) == 1


def test_other_runs_take_the_autograd_path(small_config, images):
    cases = {"fast_path": ("train", False), "precision": ("train", "bf16")}
    cases |= {"free_bits": ("objective", 0.5), "likelihood": ("model", "gaussian")}
    for field, (section, value) in cases.items():
        config = copy.deepcopy(small_config)
        setattr(getattr(config, section), field, value)
        state = build_state(config, (1, 28, 28))
        assert fast_mlp.fast_step(state, _Train(images)) is None, field
        line = fast_mlp.fallback_line(state, _Train(images))
        if field == "fast_path":  # asked for: nothing to say
            assert line is None
        else:  # said once, with the reason
            assert "autograd" in line and fast_mlp.ineligible(state, _Train(images)) in line
    assert fast_mlp.fast_step(build_state(small_config, (1, 28, 28)), _Train(images))
    assert fast_mlp.fallback_line(build_state(small_config, (1, 28, 28)), _Train(images)) is None


def test_a_run_that_falls_back_says_so_once(small_config, tmp_path):
    small_config.data.limit, small_config.train.epochs = 256, 1
    small_config.objective.free_bits = 0.5
    lines: list[str] = []
    fit(small_config, tmp_path / "run", log=lines.append, progress=False)
    said = [line for line in lines if "fast path" in line]
    why = "(not the plain ELBO)"
    assert said == [f"the MLP fast path does not apply {why}: training on the autograd path"]


def test_fast_test_loss_and_estimate_match_the_generic_path(small_config, images):
    model = build_state(small_config, (1, 28, 28)).model
    fast = estimate.elbo_sums(model, images, 200, seed=4)
    generic = estimate.elbo_sums(model, images, 200, seed=4, fast=False)
    for key, value in generic.items():
        assert fast[key].item() == pytest.approx(value.item(), rel=1e-6), key
    x = to_unit(images[:20])
    rows = 20 * 7  # the same chunks, hence the same noise draws, on both paths
    got = fast_eval.importance_weighted_log_px(model, x, 50, torch.Generator().manual_seed(2), rows)
    with torch.inference_mode():
        want = estimate.importance_weighted_log_px(
            model, x, 50, torch.Generator().manual_seed(2), rows
        )
    assert torch.allclose(got, want, rtol=1e-5)
    config = EvalConfig(k=30, batch_size=10)
    quick = estimate.importance_weighted_estimates(model, x, config, progress=False)
    slow = estimate.importance_weighted_estimates(model, x, config, progress=False, fast=False)
    assert (quick - slow).abs().max() < 1.0  # other chunks draw other noise: close, not equal
