"""The training loop: batches in, optimiser steps out, a checkpoint every epoch.

Nothing here knows a model's insides: it calls `model(x)` and scores the output
with `objectives.negative_elbo`. Run folder layout:
    config.json               resolved configuration
    metrics.jsonl             one JSON line of train/test metrics per epoch
    checkpoint.safetensors    weights, optimiser and RNG state, progress
    samples.png, reconstructions.png
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from vaekit import checkpoint, pictures
from vaekit.config import RunConfig
from vaekit.data import Split, epoch_order, iterate_batches, load_split, to_unit
from vaekit.errors import ConfigError
from vaekit.evaluate import elbo_sums
from vaekit.models import VAE, build_model
from vaekit.objectives import negative_elbo
from vaekit.runtime import (
    autocast,
    needs_grad_scaler,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
)

# Options that may change when a run is resumed; the rest define the run.
RESUMABLE_OVERRIDES = {"epochs", "device", "pictures", "data_dir", "download", "eval_batch_size"}
TERMS = ("loss", "recon", "kl")


@dataclass
class State:
    """What a run needs in memory; `fit` builds it, `train_epoch` advances it."""

    config: RunConfig
    device: torch.device
    model: VAE
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    epoch: int = 0  # epochs completed


def make_optimizer(model: VAE, config: RunConfig) -> torch.optim.Optimizer:
    # The fused kernel does Adam's element-wise update in one pass over the parameters.
    return torch.optim.Adam(model.parameters(), lr=config.train.lr, fused=True)


def build_state(
    config: RunConfig, image_shape: tuple[int, int, int], resume_from: Any = None
) -> State:
    """Seed, build model and optimiser, and restore them from a checkpoint when given."""
    device = resolve_device(config.train.device)
    seed_everything(config.train.seed)  # before building: same seed, same initial weights
    model = build_model(config.model, image_shape).to(device)
    optimizer = make_optimizer(model, config)
    scaler = (
        torch.amp.GradScaler(device.type)
        if needs_grad_scaler(device, config.train.precision)
        else None
    )
    state = State(config, device, model, optimizer, scaler)
    if resume_from is not None:
        model.load_state_dict(resume_from.model_state)
        optimizer.load_state_dict(resume_from.optimizer_state)
        set_rng_state(resume_from.rng_state, device)
        state.epoch = int(resume_from.progress["epoch"])
    return state


def train_step(state: State, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """One optimiser step on a float batch; returns the batch's summed terms (no host sync)."""
    with autocast(state.device, state.config.train.precision):
        out = state.model(x)
    terms = negative_elbo(x, out.logits, out.mu, out.logvar)
    # Summed, not averaged, over the batch: the seed's loss, so Adam sees the same scale.
    loss = terms["loss"].sum()
    state.optimizer.zero_grad(set_to_none=True)
    if state.scaler is None:
        loss.backward()
        state.optimizer.step()
    else:
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
    return {key: value.detach().sum() for key, value in terms.items()}


def train_epoch(state: State, train: Split, progress: bool = True) -> dict[str, float]:
    """One pass over the shuffled training set; per-example averages of the terms."""
    cfg = state.config.train
    order = epoch_order(len(train), cfg.seed, state.epoch + 1, train.images.device)
    sums = {key: torch.zeros((), device=state.device) for key in TERMS}
    state.model.train()
    batches = iterate_batches(train.images, cfg.batch_size, order)
    total = -(-len(train) // cfg.batch_size)
    bar = tqdm(
        batches,
        total=total,
        desc=f"epoch {state.epoch + 1}",
        leave=False,
        disable=None if progress else True,
    )
    for step, images in enumerate(bar):
        batch_sums = train_step(state, to_unit(images))
        for key in TERMS:
            sums[key] += batch_sums[key]
        if step % 50 == 0 and not bar.disable:
            bar.set_postfix(loss=f"{batch_sums['loss'].item() / images.shape[0]:.2f}")
    state.epoch += 1
    return {key: value.item() / len(train) for key, value in sums.items()}


def save_checkpoint(state: State, run_dir: Path, image_shape: tuple[int, int, int]) -> Path:
    ckpt = checkpoint.Checkpoint(
        config=state.config,
        image_shape=image_shape,
        model_state=state.model.state_dict(),
        optimizer_state=state.optimizer.state_dict(),
        rng_state=rng_state(state.device),
        progress={"epoch": state.epoch},
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
        if name not in RESUMABLE_OVERRIDES:
            raise ConfigError(f"--{name.replace('_', '-')} cannot change when resuming a run")
        section = next(s for s in raw if name in raw[s])
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
    data = config.data
    device = resolve_device(config.train.device)
    train, test = (
        load_split(data.dataset, split, data.data_dir, data.download).subset(data.limit).to(device)
        for split in ("train", "test")
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "config.json")
    state = build_state(config, train.image_shape, ckpt)
    cfg = config.train
    while state.epoch < cfg.epochs:
        started = time.perf_counter()
        train_stats = train_epoch(state, train, progress)
        seconds = time.perf_counter() - started
        test_sums = elbo_sums(
            state.model, test.images, cfg.eval_batch_size, cfg.seed, cfg.precision
        )
        test_stats = {key: value.item() / len(test) for key, value in test_sums.items()}
        record = {"epoch": state.epoch, "seconds": round(seconds, 3)}
        record |= {f"train_{k}": v for k, v in train_stats.items()}
        record |= {f"test_{k}": v for k, v in test_stats.items()}
        with open(run_dir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        save_checkpoint(state, run_dir, train.image_shape)
        train_loss, test_loss = train_stats["loss"], test_stats["loss"]
        log(f"Epoch {state.epoch}, Loss: {train_loss:.4f}, Test loss: {test_loss:.4f}")
    if cfg.pictures:
        write_pictures(state.model, test, run_dir, cfg.seed)
    return run_dir


def write_pictures(model: VAE, test: Split, run_dir: Path, seed: int) -> None:
    """samples.png: 64 prior draws, 8x8 as in the seed; reconstructions.png: 32 test images."""
    pictures.save_png(
        pictures.grid(pictures.sample(model, 64, seed)), run_dir / "samples.png", scale=2
    )
    originals = to_unit(test.images[:32])
    pictures.save_png(
        pictures.reconstruction_grid(model, originals), run_dir / "reconstructions.png", scale=2
    )
