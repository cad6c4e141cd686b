"""The training loop: batches in, optimiser steps out, a checkpoint every epoch.

Nothing here knows a model's insides: it calls `model(x)` and scores the output
with `objectives.training_terms` and the model's likelihood. Run folder layout:
    config.json               resolved configuration
    metrics.jsonl             one JSON line of train/test metrics (and the lr) per epoch
    checkpoint.safetensors    weights, optimiser and RNG state, progress
    samples.png, reconstructions.png
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from vaekit import checkpoint, distributed, pictures
from vaekit.config import RunConfig
from vaekit.data import Split, epoch_order, iterate_batches, load_data, model_input, to_unit
from vaekit.distributed import World, world_from_env
from vaekit.errors import ConfigError, TrainingDiverged, TrainingInterrupted
from vaekit.evaluate import elbo_sums
from vaekit.interrupts import stop_on_signals
from vaekit.models import VAE, build_model
from vaekit.objectives import training_terms
from vaekit.runtime import (
    autocast,
    flush_denormals,
    needs_grad_scaler,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
)
from vaekit.schedules import SCHEDULES

# Options that may change when a run is resumed; the rest define the run.
RESUMABLE_OVERRIDES = {
    "epochs",
    "device",
    "pictures",
    "plots",
    "data_dir",
    "download",
    "eval_batch_size",
}
TERMS = ("loss", "recon", "kl")
COUNTS = ("examples", "skipped")
DIVERGENCE_CHECK_EVERY = 16  # steps between host reads of the bad-step counter


@dataclass
class State:
    """What a run needs in memory; `fit` builds it, `train_epoch` advances it.

    `epoch` counts finished epochs; `batch` the batches done of the one in
    progress, whose running sums live in `sums` as device scalars (read back
    only at the end of the epoch, so steps never wait on the host).
    """

    config: RunConfig
    device: torch.device
    model: VAE
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    epoch: int = 0
    batch: int = 0
    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    bad_in_a_row: torch.Tensor | None = None
    worst_in_a_row: torch.Tensor | None = None
    world: World = field(default_factory=World)
    net: torch.nn.Module | None = None  # the model as called in training (DDP-wrapped if so)

    def reset_sums(self, values: dict[str, float] | None = None) -> None:
        values = values or {}
        self.sums = {
            key: torch.tensor(values.get(key, 0.0), device=self.device) for key in TERMS + COUNTS
        }


def make_optimizer(model: VAE, config: RunConfig) -> torch.optim.Optimizer:
    """Adam with the fused kernel: one pass over the parameters per step, and it honours
    `optimizer.found_inf`, which lets a bad step be skipped without a host sync."""
    return torch.optim.Adam(model.parameters(), lr=config.train.lr, fused=True)


def build_state(
    config: RunConfig,
    image_shape: tuple[int, int, int],
    resume_from: Any = None,
    world: World | None = None,
) -> State:
    """Seed, build model and optimiser, and restore them from a checkpoint when given."""
    device = resolve_device(config.train.device)
    seed_everything(config.train.seed)  # before building: same seed, same initial weights
    model = build_model(config.model, image_shape).to(device)
    optimizer = make_optimizer(model, config)
    scaler = None
    if needs_grad_scaler(device, config.train.precision):
        scaler = torch.amp.GradScaler(device.type)
    state = State(config, device, model, optimizer, scaler, world=world or World())
    state.reset_sums()
    # Runs of bad steps may span epochs, so these are not reset with the sums.
    state.bad_in_a_row = torch.zeros((), device=device)
    state.worst_in_a_row = torch.zeros((), device=device)
    if resume_from is not None:
        model.load_state_dict(resume_from.model_state)
        optimizer.load_state_dict(resume_from.optimizer_state)
        set_rng_state(resume_from.rng_state, device)
        progress = resume_from.progress
        state.epoch, state.batch = int(progress["epoch"]), int(progress.get("batch", 0))
        if state.world.is_main:  # saved sums are global: one rank carries them
            state.reset_sums(progress.get("sums"))
    state.net = model
    if state.world.distributed:
        ids = [device.index] if device.type == "cuda" else None
        state.net = DistributedDataParallel(model, device_ids=ids)
    return state


def grad_norm(parameters: list[torch.Tensor]) -> torch.Tensor:
    """Total 2-norm of the gradients in one fused pass (what clip_grad_norm_ computes)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def kl_weight(config: RunConfig, progress: float) -> float:
    """beta, scaled by the KL warm-up: linear from 0 at the start to 1 after warmup_epochs.

    `progress` counts epochs done, fractions included, so the weight rises every step.
    """
    objective = config.objective
    if not objective.warmup_epochs:
        return objective.beta
    return objective.beta * min(1.0, progress / objective.warmup_epochs)


def learning_rate(config: RunConfig, epoch: int) -> float:
    """The learning rate of 0-based `epoch` under the run's schedule (`vaekit.schedules`)."""
    return SCHEDULES[config.train.lr_schedule](config.train, epoch)


def train_step(
    state: State, x: torch.Tensor, noise: torch.Tensor | None = None, weight: float = 1.0
) -> torch.Tensor:
    """One optimiser step on a float batch, skipped when the loss or a gradient is not finite
    (or, with --skip-grad-norm, too large). `weight` multiplies the KL (beta, warm-up).

    Adds the batch's summed terms to `state.sums` on the device; returns the batch loss.
    """
    cfg, objective = state.config.train, state.config.objective
    k = objective.samples_per_example()
    with autocast(state.device, cfg.precision):
        out = state.net(x, noise=noise, k=k)
    terms = training_terms(
        x, out, state.model.likelihood.nll, objective.objective, weight, objective.free_bits
    )
    # Summed, not averaged, over the batch: the seed's loss, so Adam sees the same scale.
    loss = terms["objective"]
    state.optimizer.zero_grad(set_to_none=True)
    parameters = list(state.model.parameters())
    if state.scaler is not None:
        state.scaler.scale(loss * state.world.size).backward()
        state.scaler.unscale_(state.optimizer)  # so clipping sees the true norm
    else:
        # DDP averages gradients over ranks; scaling by the world size makes the
        # result the gradient of the global batch's summed loss, as with one process.
        (loss * state.world.size if state.world.distributed else loss).backward()
    if cfg.max_grad_norm:
        norm = torch.nn.utils.clip_grad_norm_(parameters, cfg.max_grad_norm)
    else:
        norm = grad_norm(parameters)
    bad = ~(torch.isfinite(loss) & torch.isfinite(norm))
    if cfg.skip_grad_norm:
        bad |= norm > cfg.skip_grad_norm
    # Fused Adam skips the update on the device. With fp16's scaler the gradients are
    # unscaled already, so the step is taken here too (scaler.step would skip only on
    # overflow, not for --skip-grad-norm); update() still backs the scale off on overflow.
    state.optimizer.found_inf = bad.float()
    state.optimizer.step()
    if state.scaler is not None:
        state.scaler.update()
    for key in TERMS:
        state.sums[key] += torch.where(bad, 0.0, terms[key].detach().sum())
    state.sums["examples"] += torch.where(bad, 0, x.shape[0])
    state.sums["skipped"] += bad
    state.bad_in_a_row = (state.bad_in_a_row + 1) * bad
    state.worst_in_a_row = torch.maximum(state.worst_in_a_row, state.bad_in_a_row)
    return loss.detach()


def check_divergence(state: State, run_dir: Path) -> None:
    limit = state.config.train.max_bad_steps
    if state.worst_in_a_row.item() >= limit:
        kept = (
            f"the last good checkpoint (epoch {state.epoch}) in {run_dir} is kept"
            if state.epoch
            else "no checkpoint was written"
        )
        raise TrainingDiverged(
            f"{limit} non-finite steps in a row in epoch {state.epoch + 1}; stopped, and {kept}. "
            "Try a lower --lr or set --max-grad-norm."
        )


def train_epoch(state: State, train: Split, run_dir: Path, stop: Any, progress: bool) -> bool:
    """Advance through the shuffled training set; False when a stop request cut it short."""
    cfg = state.config.train
    order = epoch_order(len(train), cfg.seed, state.epoch + 1, train.images.device)
    order = order[state.batch * cfg.batch_size :]  # resuming mid-epoch: skip what was done
    state.model.train()
    total = -(-len(train) // cfg.batch_size)
    for group in state.optimizer.param_groups:
        group["lr"] = learning_rate(state.config, state.epoch)
    bar = tqdm(
        iterate_batches(train.images, cfg.batch_size, order),
        total=total,
        initial=state.batch,
        desc=f"epoch {state.epoch + 1}",
        leave=False,
        disable=None if progress and state.world.is_main else True,
    )
    world = state.world
    k = state.config.objective.samples_per_example()
    for images in bar:
        # Inputs and noise for the global batch, identical on every rank; each rank
        # then trains on its slice (see vaekit.distributed).
        x = model_input(images, state.config.data.binarize)
        noise = state.model.noise(x.shape[0], k)
        weight = kl_weight(state.config, state.epoch + state.batch / total)
        loss = train_step(state, world.shard(x), world.shard(noise), weight)
        state.batch += 1
        if state.batch % DIVERGENCE_CHECK_EVERY == 0:
            check_divergence(state, run_dir)
            if not bar.disable:
                bar.set_postfix(loss=f"{loss.item() / images.shape[0]:.2f}")
        if world.any(bool(stop), state.device):
            bar.close()
            return False
    check_divergence(state, run_dir)
    return True


def finish_epoch(state: State) -> dict[str, float]:
    """Per-example averages of the epoch's terms over all ranks; resets the running sums."""
    state.world.all_sum(list(state.sums.values()))
    examples = state.sums["examples"].item()
    stats = {key: state.sums[key].item() / max(examples, 1) for key in TERMS}
    stats["skipped"] = int(state.sums["skipped"].item())
    state.epoch, state.batch = state.epoch + 1, 0
    state.reset_sums()
    return stats


def save_checkpoint(state: State, run_dir: Path, image_shape: tuple[int, int, int]) -> Path:
    progress: dict[str, Any] = {"epoch": state.epoch, "batch": state.batch}
    if state.batch:
        state.world.all_sum(list(state.sums.values()))  # a collective: every rank calls it
    if not state.world.is_main:
        return run_dir / checkpoint.FILENAME
    if state.batch:  # mid-epoch: keep the running sums so the epoch's loss comes out the same
        progress["sums"] = {key: value.item() for key, value in state.sums.items()}
    ckpt = checkpoint.Checkpoint(
        config=state.config,
        image_shape=image_shape,
        model_state=state.model.state_dict(),
        optimizer_state=state.optimizer.state_dict(),
        rng_state=rng_state(state.device),
        progress=progress,
    )
    return checkpoint.save(ckpt, run_dir)


def resume_config(
    run_dir: Path, overrides: dict[str, Any]
) -> tuple[RunConfig, checkpoint.Checkpoint]:
    """The stored config of a run with only the options allowed on resume replaced."""
    if not (run_dir / checkpoint.FILENAME).is_file():
        raise ConfigError(f"{run_dir} is not a vaekit run folder (no {checkpoint.FILENAME})")
    ckpt = checkpoint.load(run_dir)
    raw = ckpt.config.to_dict()
    for name, value in overrides.items():
        section = next(s for s in raw if name in raw[s])
        if name not in RESUMABLE_OVERRIDES and raw[section][name] != value:
            raise ConfigError(f"--{name.replace('_', '-')} cannot change when resuming a run")
        raw[section][name] = value
    return RunConfig.from_dict(raw), ckpt


def fit(
    config: RunConfig,
    run_dir: str | Path,
    resume: bool = False,
    resume_overrides: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> Path:
    """Train `config` into `run_dir` (or continue the run there); returns the run folder."""
    run_dir = Path(run_dir)
    ckpt = None
    if resume:
        config, ckpt = resume_config(run_dir, resume_overrides or {})
    elif (run_dir / checkpoint.FILENAME).exists():
        raise ConfigError(
            f"{run_dir} already holds a run; pass --resume {run_dir} or another --out"
        )
    config.validate()
    world = world_from_env()
    device = resolve_device(config.train.device)
    distributed.start(world, device)
    try:
        log = log if world.is_main else _silent
        with flush_denormals(device):
            return _fit(config, run_dir, ckpt, world, device, log, progress)
    finally:
        distributed.stop(world)


def _silent(_: str) -> None:
    """The log of ranks other than 0: only rank 0 speaks."""


def _fit(
    config: RunConfig,
    run_dir: Path,
    ckpt: checkpoint.Checkpoint | None,
    world: World,
    device: torch.device,
    log: Callable[[str], None],
    progress: bool,
) -> Path:
    data = config.data
    train, test = (load_data(data, split).to(device) for split in ("train", "test"))
    run_dir.mkdir(parents=True, exist_ok=True)
    if world.is_main:
        config.save(run_dir / "config.json")
    state = build_state(config, train.image_shape, ckpt, world)
    cfg = config.train
    with stop_on_signals() as stop:
        while state.epoch < cfg.epochs:
            started = time.perf_counter()
            if not train_epoch(state, train, run_dir, stop, progress):
                save_checkpoint(state, run_dir, train.image_shape)
                raise TrainingInterrupted(
                    f"stopped by {signal.Signals(stop.signum or signal.SIGTERM).name} in epoch "
                    f"{state.epoch + 1} after batch {state.batch}; checkpoint saved. "
                    f"Continue with: vaekit train --resume {run_dir}",
                    stop.signum or signal.SIGTERM,
                )
            seconds = time.perf_counter() - started
            lr = state.optimizer.param_groups[0]["lr"]  # the rate this epoch trained at
            train_stats = finish_epoch(state)
            save_checkpoint(state, run_dir, train.image_shape)
            if world.is_main:  # rank 0 alone measures the test set and writes the run folder
                test_stats = _test_metrics(state, test)
                record = {"epoch": state.epoch, "lr": lr, "seconds": round(seconds, 3)}
                record |= {f"train_{k}": v for k, v in train_stats.items()}
                record |= {f"test_{k}": v for k, v in test_stats.items()}
                with open(run_dir / "metrics.jsonl", "a") as handle:
                    handle.write(json.dumps(record) + "\n")
                train_loss, test_loss = train_stats["loss"], test_stats["loss"]
                log(f"Epoch {state.epoch}, Loss: {train_loss:.4f}, Test loss: {test_loss:.4f}")
            if world.any(bool(stop), device) and state.epoch < cfg.epochs:
                raise TrainingInterrupted(
                    f"stopped by {signal.Signals(stop.signum or signal.SIGTERM).name} after "
                    f"epoch {state.epoch}; checkpoint saved. "
                    f"Continue with: vaekit train --resume {run_dir}",
                    stop.signum or signal.SIGTERM,
                )
    world.barrier()
    if not world.is_main:
        return run_dir
    if cfg.pictures:
        write_pictures(state.model, test, run_dir, cfg.seed)
    if cfg.plots:
        from vaekit import plots  # matplotlib is slow to import: only runs that draw pay

        plots.plot_run(state.model, test, run_dir, cfg.seed, data.binarize, data.dataset)
    return run_dir


def _test_metrics(state: State, test: Split) -> dict[str, float]:
    """The per-epoch test-set terms, with the run's precision and binarisation."""
    cfg, data = state.config.train, state.config.data
    sums = elbo_sums(
        state.model,
        test.images,
        cfg.eval_batch_size,
        cfg.seed,
        cfg.precision,
        binarize=data.binarize,
    )
    return {key: value.item() / len(test) for key, value in sums.items()}


def write_pictures(model: VAE, test: Split, run_dir: Path, seed: int) -> None:
    """samples.png: 64 prior draws, 8x8 as in the seed; reconstructions.png: 32 test images."""
    pictures.save_png(
        pictures.grid(pictures.sample(model, 64, seed)), run_dir / "samples.png", scale=2
    )
    originals = to_unit(test.images[:32])
    pictures.save_png(
        pictures.reconstruction_grid(model, originals), run_dir / "reconstructions.png", scale=2
    )
