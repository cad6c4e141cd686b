"""Learning-rate schedules: the rate of each 0-based epoch, from the run's train config.

One function per schedule in `SCHEDULES`, so `--lr-schedule`'s choices come from this
table and the training loop looks a schedule up by name instead of branching on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # config imports SCHEDULE_NAMES from here
    from vaekit.config import TrainConfig


def constant(cfg: TrainConfig, epoch: int) -> float:
    """The seed's: lr throughout."""
    return cfg.lr


def iwae(cfg: TrainConfig, epoch: int) -> float:
    """Burda et al. (2015), section 5: stage i = 0..7 lasts 3^i epochs at lr * 10^(-i/7)
    (3280 epochs in all); later epochs stay in the last stage."""
    stage, end = 0, 1
    while epoch >= end and stage < 7:
        stage += 1
        end += 3**stage
    return cfg.lr * 10 ** (-stage / 7)


def exponential(cfg: TrainConfig, epoch: int) -> float:
    """lr to lr_final geometrically over lr_decay_epochs (unset: epochs), then held.

    The same number of epochs in each decade of the rate, so that the rate reaches its
    end in a run that fits one session. The horizon is stored with the run, so extending
    it with --epochs does not rescale the epochs already trained.
    """
    horizon = cfg.lr_decay_epochs or cfg.epochs
    progress = min(1.0, epoch / max(horizon - 1, 1))
    return cfg.lr * (cfg.lr_final / cfg.lr) ** progress


SCHEDULES: dict[str, Callable[[TrainConfig, int], float]] = {
    "constant": constant,
    "iwae": iwae,
    "exponential": exponential,
}
SCHEDULE_NAMES = tuple(SCHEDULES)
