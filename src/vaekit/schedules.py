"""Learning-rate schedules: the rate of each 0-based epoch, from the run's train config.

One function per schedule, registered under the names `vaekit.config.registry.SCHEDULE`
declares (the choices of `--lr-schedule`), so the training loop looks a schedule up by
name instead of branching on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from vaekit.config import TrainConfig
from vaekit.config.registry import SCHEDULE


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


for _name, _schedule in {"constant": constant, "iwae": iwae, "exponential": exponential}.items():
    SCHEDULE.register(_name, _schedule)
SCHEDULES: Mapping[str, Callable[[TrainConfig, int], float]] = SCHEDULE.implementations
