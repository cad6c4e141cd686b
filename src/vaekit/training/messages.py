"""Lines that explain a run's numbers when they would surprise a newcomer.

Each is said once per run, on rank 0, through the loop's `log`.
"""

from __future__ import annotations

from vaekit.config import RunConfig

# Likelihoods that are densities on [0, 1] rather than probabilities of discrete pixels.
DENSITIES = {"gaussian", "gaussian-learned", "continuous-bernoulli"}


def at_start(config: RunConfig, epoch: int) -> list[str]:
    """What to say before training: the KL warm-up, while it is still ahead."""
    warmup = config.objective.warmup_epochs
    if warmup and epoch < warmup:
        return [
            f"KL warm-up: the KL term's weight rises from 0 to {config.objective.beta:g} over "
            f"the first {warmup:g} epochs, so the first epochs' losses are high and fall as "
            "the encoder learns to pay for its codes"
        ]
    return []


def after_epoch(config: RunConfig, train_loss: float, said: set[str]) -> list[str]:
    """What to say after an epoch: why a loss is negative, the first time it is."""
    lines = []
    if train_loss < 0 and config.model.likelihood in DENSITIES and "negative" not in said:
        said.add("negative")
        lines.append(
            f"(The loss is negative: {config.model.likelihood} is a density on [0, 1], which "
            "can exceed 1, so -log p(x|z) < 0. It is not a probability of discrete pixels; "
            "compare it only with runs of the same likelihood.)"
        )
    return lines
