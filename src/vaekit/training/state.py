"""A run in memory: model, optimiser, progress and running sums; built, restored, saved.

`build_state` seeds, builds the model and the optimiser, and restores them from a
checkpoint; `save_checkpoint` writes them back (mid-epoch too, with the running
sums, so a resumed epoch reports the same loss).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from vaekit import checkpoint
from vaekit.config import RunConfig
from vaekit.disentangle import Companion
from vaekit.distributed import World
from vaekit.models import VAE, build_model
from vaekit.objectives import companion
from vaekit.runtime import (
    needs_grad_scaler,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
)
from vaekit.training.stages import source_weights

TERMS = ("loss", "recon", "kl")
COUNTS = ("examples", "skipped")


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
    transform: Any = None  # a table's data.tables.TableTransform, saved with every checkpoint
    fast: Any = None  # training.fast_mlp.FastMLPStep when the run takes the MLP fast path
    companion: Companion | None = None  # what the objective carries (disentangle.Companion)

    @property
    def term_names(self) -> tuple[str, ...]:
        """The per-example terms summed each epoch: TERMS, then the objective's own."""
        return TERMS + (self.companion.terms if self.companion else ())

    def reset_sums(self, values: dict[str, float] | None = None) -> None:
        values = values or {}
        self.sums = {
            key: torch.tensor(values.get(key, 0.0), device=self.device)
            for key in self.term_names + COUNTS
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
    transform: Any = None,
    dataset_size: int = 1,
) -> State:
    """Seed, build model and optimiser (and the objective's companion), and restore them
    from a checkpoint when given. A table's `transform` gives the likelihood its columns'
    layout; `dataset_size` (the training examples) is what beta-TCVAE's estimator needs."""
    device = resolve_device(config.train.device)
    seed_everything(config.train.seed)  # before building: same seed, same initial weights
    layout = None if transform is None else transform.layout
    model = build_model(config.model, image_shape, layout).to(device)
    if resume_from is None and (warm := source_weights(config)) is not None:
        model.warm_start(warm)  # a second stage: the first run's network, then this one's
    optimizer = make_optimizer(model, config)
    scaler = None
    if needs_grad_scaler(device, config.train.precision):
        scaler = torch.amp.GradScaler(device.type)
    state = State(config, device, model, optimizer, scaler, world=world or World())
    state.transform = transform
    state.companion = companion(config.objective, model.latent_dim, dataset_size, device)
    state.reset_sums()
    # Runs of bad steps may span epochs, so these are not reset with the sums.
    state.bad_in_a_row = torch.zeros((), device=device)
    state.worst_in_a_row = torch.zeros((), device=device)
    if resume_from is not None:
        model.load_state_dict(resume_from.model_state)
        optimizer.load_state_dict(resume_from.optimizer_state)
        if state.companion is not None:
            state.companion.load_state_dict(resume_from.companion_state)
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


def save_checkpoint(state: State, run_dir: Path, image_shape: tuple[int, int, int]) -> Path:
    progress: dict[str, Any] = {"epoch": state.epoch, "batch": state.batch}
    if state.batch:
        state.world.all_sum(list(state.sums.values()))  # a collective: every rank calls it
    if not state.world.is_main:
        return run_dir / checkpoint.FILENAME
    if state.batch:  # mid-epoch: keep the running sums so the epoch's loss comes out the same
        progress["sums"] = {key: value.item() for key, value in state.sums.items()}
    ckpt = weights_checkpoint(state, image_shape, progress)
    ckpt.optimizer_state = state.optimizer.state_dict()
    if state.companion is not None:
        ckpt.companion_state = state.companion.state_dict()
    ckpt.rng_state = rng_state(state.device)
    return checkpoint.save(ckpt, run_dir)


def weights_checkpoint(
    state: State, image_shape: tuple[int, int, int], progress: dict[str, Any]
) -> checkpoint.Checkpoint:
    """The model as it is now, with its config and a table's transform, and no optimiser
    or RNG state: what best.safetensors holds, and the core of every checkpoint."""
    return checkpoint.Checkpoint(
        config=state.config,
        image_shape=image_shape,
        model_state=state.model.state_dict(),
        progress=progress,
        data_transform=None if state.transform is None else state.transform.to_dict(),
    )
