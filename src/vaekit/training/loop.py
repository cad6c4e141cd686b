"""The training loop: batches in, optimiser steps out, a checkpoint every epoch.

Nothing here knows a model's insides (see `training.step`), nor what a run
folder's files are called (see `vaekit.runfolder`). The end-of-run pictures and
plots are the API's job, not the loop's.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vaekit import checkpoint, distributed, threads
from vaekit.config import RunConfig
from vaekit.data import (
    VALIDATION,
    Split,
    TableTransform,
    epoch_order,
    iterate_batches,
    load_data,
    model_input,
)
from vaekit.distributed import World, world_from_env
from vaekit.errors import ConfigError, TrainingDiverged, TrainingInterrupted
from vaekit.evaluation.codes import per_example
from vaekit.evaluation.estimate import elbo_sums
from vaekit.interrupts import stop_on_signals
from vaekit.runfolder import RunFolder
from vaekit.runlock import RunLock
from vaekit.runtime import flush_denormals, resolve_device
from vaekit.training import fast_mlp, keep, messages
from vaekit.training.budget import check_training_fits
from vaekit.training.observers import EpochObserver
from vaekit.training.resume import resume_config
from vaekit.training.stages import adopt_source
from vaekit.training.state import COUNTS, TERMS, State, build_state, save_checkpoint
from vaekit.training.step import kl_weight, learning_rate, train_step

DIVERGENCE_CHECK_EVERY = 16  # steps between host reads of the bad-step counter


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
    if state.fast is not None:
        return fast_epoch(state, order, total, run_dir, stop, progress)
    bar = tqdm(
        zip(
            iterate_batches(train.images, cfg.batch_size, order),
            iterate_batches(train.labels, cfg.batch_size, order),
            strict=True,
        ),
        total=total,
        initial=state.batch,
        desc=f"epoch {state.epoch + 1}",
        leave=False,
        disable=None if progress and state.world.is_main else True,
    )
    world = state.world
    k = state.config.objective.samples_per_example()
    for images, labels in bar:
        # Inputs and noise for the global batch, identical on every rank; each rank
        # then trains on its slice (see vaekit.distributed).
        x = model_input(images, state.config.data.binarize)
        noise = state.model.noise(x.shape[0], k)
        weight = kl_weight(state.config, state.epoch + state.batch / total)
        labels = world.shard(labels.to(x.device))
        loss = train_step(state, world.shard(x), world.shard(noise), weight, labels)
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


def fast_epoch(
    state: State, order: torch.Tensor, total: int, run_dir: Path, stop: Any, progress: bool
) -> bool:
    """`train_epoch` on the MLP fast path (`training.fast_mlp`): the same batches, noise,
    sums and bad-step rules, the running sums kept as float32 on the host (on the CPU a
    read costs nothing) and handed back to `state` before anything reads them. The steps
    go to the C loop up to DIVERGENCE_CHECK_EVERY at a time, so a stop request lands
    within 16 steps, at a step boundary, as the divergence checks do."""
    size = state.config.train.batch_size
    sums = {key: np.float32(state.sums[key].item()) for key in TERMS}
    counts = {key: int(state.sums[key].item()) for key in COUNTS}
    run = [int(state.bad_in_a_row.item()), int(state.worst_in_a_row.item())]
    where = dict(initial=state.batch, desc=f"epoch {state.epoch + 1}", leave=False)
    bar = tqdm(total=total, disable=None if progress else True, **where)
    finished = True
    with torch.no_grad():
        start = 0
        while start < order.numel():
            # up to the next multiple of DIVERGENCE_CHECK_EVERY: checks fall where they
            # fall on the autograd path
            count = DIVERGENCE_CHECK_EVERY - state.batch % DIVERGENCE_CHECK_EVERY
            rows = min(count * size, order.numel() - start)
            count = -(-rows // size)
            at = [state.epoch + (state.batch + i) / total for i in range(count)]
            weights = [kl_weight(state.config, epoch) for epoch in at]
            for i, (recon, kl, bad) in enumerate(state.fast.steps(order, start, rows, weights)):
                if not bad:
                    for key, value in (("loss", recon + kl), ("recon", recon), ("kl", kl)):
                        sums[key] = np.float32(sums[key] + np.float32(value))
                    counts["examples"] += min(size, rows - i * size)
                counts["skipped"] += int(bad)
                run[0] = run[0] + 1 if bad else 0
                run[1] = max(run[1], run[0])
            state.batch += count
            start += rows
            bar.update(count)
            if state.batch % DIVERGENCE_CHECK_EVERY == 0:
                _hand_back(state, sums, counts, run)
                check_divergence(state, run_dir)
            if stop:
                finished = False
                break
    bar.close()
    _hand_back(state, sums, counts, run)
    check_divergence(state, run_dir)
    return finished


def _hand_back(state: State, sums: dict, counts: dict[str, int], run: list[int]) -> None:
    for key, value in (sums | counts).items():
        state.sums[key].fill_(float(value))
    state.bad_in_a_row.fill_(run[0])
    state.worst_in_a_row.fill_(run[1])


def finish_epoch(state: State) -> dict[str, float]:
    """Per-example averages of the epoch's terms over all ranks; resets the running sums."""
    state.world.all_sum(list(state.sums.values()))
    examples = state.sums["examples"].item()
    stats = {key: state.sums[key].item() / max(examples, 1) for key in state.term_names}
    stats["skipped"] = int(state.sums["skipped"].item())
    state.epoch, state.batch = state.epoch + 1, 0
    state.reset_sums()
    return stats


def fit(
    config: RunConfig,
    run_dir: str | Path,
    resume: bool = False,
    resume_overrides: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
    observers: Sequence[EpochObserver] = (),
    lock: RunLock | None = None,
) -> Path:
    """Train `config` into `run_dir` (or continue the run there); returns the run folder.

    `observers` hear of every finished epoch on rank 0 (see `training.observers`).
    The folder's lock is held throughout (`lock`: one the caller holds longer).
    """
    folder = RunFolder(run_dir)
    world = world_from_env()
    owned = lock is None
    lock = lock or RunLock(folder, holds=world.is_main)
    log = log if world.is_main else _silent
    observers = observers if world.is_main else ()
    try:
        lock.take()  # first: a folder another process trains in is refused at once
        config, ckpt = _starting_point(config, folder, resume, resume_overrides or {}, log)
        device = resolve_device(config.train.device)
        distributed.start(world, device)
        try:
            with flush_denormals(device):
                _fit(config, folder, ckpt, world, device, log, progress, observers, lock)
                return folder.path
        finally:
            for observer in observers:
                observer.close(folder.path)
            distributed.stop(world)
    finally:
        if owned:
            lock.release()


def _starting_point(
    config: RunConfig,
    folder: RunFolder,
    resume: bool,
    overrides: dict[str, Any],
    log: Callable[[str], None],
) -> tuple[RunConfig, checkpoint.Checkpoint | None]:
    """The config to train (a resumed run's own) and the checkpoint to start from, with
    the thread count chosen (or the run's kept) and handed to torch."""
    ckpt = None
    if resume:
        config, ckpt = resume_config(folder, overrides)
        if ckpt is None:
            log(f"{folder.path} has no checkpoint yet: starting it afresh from its config.json")
    elif folder.holds_run():
        raise ConfigError(
            f"{folder.path} already holds a run; pass --resume {folder.path} or another --out"
        )
    else:
        config = adopt_source(config)
    config.validate()
    repeat = resume and ckpt is not None and "threads" not in overrides
    config.train.threads, note = threads.for_run(config.train.threads, repeat)
    torch.set_num_threads(config.train.threads)
    if note:
        log(note)
    return config, ckpt


def _silent(_: str) -> None:
    """The log of ranks other than 0: only rank 0 speaks."""


def _interrupted(stop: Any, where: str, folder: RunFolder) -> TrainingInterrupted:
    signum = stop.signum or signal.SIGTERM
    return TrainingInterrupted(
        f"stopped by {signal.Signals(signum).name} {where}; checkpoint saved. "
        f"Continue with: vaekit train --resume {folder.path}",
        signum,
    )


def _resume_line(state: State, folder: RunFolder) -> str:
    """What a resume will do, in one line, before it does it."""
    epochs = state.config.train.epochs
    if state.epoch >= epochs:
        return (
            f"{folder.path} has finished its {epochs} epoch(s); nothing to train (more: --epochs)"
        )
    where = f"epoch {state.epoch + 1}" + (f", batch {state.batch + 1}" if state.batch else "")
    return f"Resuming {folder.path} at {where} of {epochs}"


def _fit(
    config: RunConfig,
    folder: RunFolder,
    ckpt: checkpoint.Checkpoint | None,
    world: World,
    device: torch.device,
    log: Callable[[str], None],
    progress: bool,
    observers: Sequence[EpochObserver],
    lock: RunLock,
) -> State:
    train, scored = _load(config, device, ckpt)
    lock.take(create=True)  # nothing is written to the folder before the data is good
    folder.create()
    if world.is_main:
        folder.remove_debris()
        folder.write_config(config)
        folder.repair_metrics(0 if ckpt is None else int(ckpt.progress["epoch"]))
    state = build_state(config, train.image_shape, ckpt, world, train.transform, len(train))
    state.fast = fast_mlp.fast_step(state, train)
    if world.is_main and (line := fast_mlp.fallback_line(state, train)):
        log(line)
    if ckpt:
        log(_resume_line(state, folder))
    for line in messages.at_start(config, state.epoch):
        log(line)
    said: set[str] = set()
    with stop_on_signals() as stop:
        while state.epoch < config.train.epochs:
            started = time.perf_counter()
            if not train_epoch(state, train, folder.path, stop, progress):
                save_checkpoint(state, folder.path, train.image_shape)
                where = f"in epoch {state.epoch + 1} after batch {state.batch}"
                raise _interrupted(stop, where, folder)
            seconds = time.perf_counter() - started
            lr = state.optimizer.param_groups[0]["lr"]  # the rate this epoch trained at
            record = _end_epoch(state, folder, scored, train.image_shape, (started, seconds, lr))
            if record is not None:  # rank 0
                _tell(record, state, folder, observers, log, said)
            if world.any(bool(stop), device) and state.epoch < config.train.epochs:
                raise _interrupted(stop, f"after epoch {state.epoch}", folder)
    world.barrier()
    if world.is_main and (line := keep.summary(state, folder)):
        log(line)
    return state


def _tell(
    record: dict[str, Any],
    state: State,
    folder: RunFolder,
    observers: Sequence[EpochObserver],
    log: Callable[[str], None],
    said: set[str],
) -> None:
    """The epoch's line (the seed notebook's printout), its explanations, the observers."""
    for observer in observers:
        observer.on_epoch(record, state.model, folder.path)
    line = f"Epoch {state.epoch}, Loss: {record['train_loss']:.4f}, "
    line += f"Test loss: {record['test_loss']:.4f}"
    if "val_loss" in record:
        line += f", Validation loss: {record['val_loss']:.4f}"
    log(line)
    for text in messages.after_epoch(state.config, record["train_loss"], said):
        log(text)


def _load(
    config: RunConfig, device: torch.device, ckpt: checkpoint.Checkpoint | None
) -> tuple[Split, dict[str, Split]]:
    """The training split and the held-out ones by record prefix (test; val with
    --validation), checked to fit in memory with the model before anything is built.
    A table's transform: the checkpoint's when resuming, else fitted on the training split."""
    saved = ckpt.data_transform if ckpt else None
    train = load_data(
        config.data, "train", transform=TableTransform.from_dict(saved) if saved else None
    )
    scored = {"test": load_data(config.data, "test", transform=train.transform)}
    if config.data.validation:
        scored["val"] = load_data(config.data, VALIDATION, transform=train.transform)
    held = sum(len(split) for split in scored.values())
    moved = train.images.nbytes + sum(split.images.nbytes for split in scored.values())
    moved = moved if device.type == "cuda" else 0
    layout = None if train.transform is None else train.transform.layout
    check_training_fits(config, train.image_shape, len(train), held, device, moved, layout)
    return train.to(device), {name: split.to(device) for name, split in scored.items()}


def _end_epoch(
    state: State,
    folder: RunFolder,
    scored: dict[str, Split],
    image_shape: tuple[int, int, int],
    timing: tuple[float, float, float],
) -> dict[str, Any] | None:
    """The epoch's record, then its checkpoint: a crash between the two leaves a record
    past the checkpoint, which a resume drops and writes again (the other order would
    lose the record of an epoch the checkpoint holds). `timing`: (start, seconds, lr).
    Returns the record on rank 0, None on the other ranks."""
    started, seconds, lr = timing
    train_stats = finish_epoch(state)
    record = None
    if state.world.is_main:  # rank 0 alone measures the held-out splits, writes the folder
        record = {"epoch": state.epoch, "lr": lr, "seconds": round(seconds, 3)}
        record |= {f"train_{k}": v for k, v in train_stats.items()}
        for prefix, split in scored.items():
            record |= {f"{prefix}_{k}": v for k, v in _test_metrics(state, split).items()}
        # the epoch a user waits for: steps and held-out losses (the checkpoint comes next)
        record["epoch_seconds"] = round(time.perf_counter() - started, 3)
        folder.append_metrics(record)
    save_checkpoint(state, folder.path, image_shape)
    if record is not None:
        keep.keep(state, folder, record, image_shape)
    return record


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
        labels=test.labels,
        fast=cfg.fast_path,
    )
    return per_example(sums, len(test))
