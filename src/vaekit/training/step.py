"""One optimiser step, and the schedules that set its KL weight and learning rate.

Nothing here knows a model's insides: it calls `model(x)` and scores the output
with `objectives.training_terms` and the model's likelihood; an objective that carries
more (FactorVAE's discriminator) does so in its companion, which steps after the model.
"""

from __future__ import annotations

import torch

from vaekit.config import RunConfig
from vaekit.objectives import training_terms
from vaekit.runtime import autocast
from vaekit.schedules import SCHEDULES
from vaekit.training.state import State


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
    state: State,
    x: torch.Tensor,
    noise: torch.Tensor | None = None,
    weight: float = 1.0,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """One optimiser step on a float batch, skipped when the loss or a gradient is not finite
    (or, with --skip-grad-norm, too large). `weight` multiplies the KL (beta, warm-up).

    Adds the batch's summed terms to `state.sums` on the device; returns the batch loss.
    """
    cfg, objective = state.config.train, state.config.objective
    k = objective.samples_per_example()
    with autocast(state.device, cfg.precision):
        out = state.net(x, noise=noise, k=k, **state.model.condition(labels))
    companion = state.companion
    terms = training_terms(
        x,
        out,
        state.model.likelihood.nll,
        objective.objective,
        weight,
        objective.free_bits,
        **(companion.options() if companion else {}),
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
    if companion is not None:  # the objective's own module (a discriminator) steps next
        terms = terms | companion.after_step(out)
    for key in state.term_names:
        state.sums[key] += torch.where(bad, 0.0, terms[key].detach().sum())
    state.sums["examples"] += torch.where(bad, 0, x.shape[0])
    state.sums["skipped"] += bad
    state.bad_in_a_row = (state.bad_in_a_row + 1) * bad
    state.worst_in_a_row = torch.maximum(state.worst_in_a_row, state.bad_in_a_row)
    return loss.detach()
