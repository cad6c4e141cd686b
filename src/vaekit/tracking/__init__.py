"""Experiment trackers: `vaekit train --log tensorboard,mlflow` (TrainConfig.tracking).

A tracker is an `EpochObserver` (`vaekit.training.observers`) built from the run's
resolved config and folder. `LOGGERS` maps a name to a function that imports its
class, so a tracker's optional package (tensorboard, mlflow-skinny) is imported
only by a run that asks for it; a missing one is a one-line error naming the pip
extra. A new tracker is one module here and one entry in `LOGGERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vaekit.config import RunConfig
from vaekit.errors import ConfigError
from vaekit.models import VAE
from vaekit.training.observers import EpochObserver


def _tensorboard() -> type:
    from vaekit.tracking.tensorboard import TensorBoardLogger

    return TensorBoardLogger


def _mlflow() -> type:
    from vaekit.tracking.mlflow import MlflowLogger

    return MlflowLogger


# name -> a function returning the class; the class takes (config, run_dir)
LOGGERS: dict[str, Callable[[], type]] = {"tensorboard": _tensorboard, "mlflow": _mlflow}


def names(spec: str | None) -> list[str]:
    """The tracker names in a --log value ("tensorboard,mlflow"), each checked."""
    chosen = [name.strip() for name in (spec or "").split(",") if name.strip()]
    for name in chosen:
        if name not in LOGGERS:
            raise ConfigError(f"unknown --log {name!r}; known: {', '.join(sorted(LOGGERS))}")
    return list(dict.fromkeys(chosen))


def build(config: RunConfig, run_dir: str | Path) -> list[EpochObserver]:
    """The trackers `config.train.tracking` names, for the run in `run_dir`."""
    return [LOGGERS[name]()(config, Path(run_dir)) for name in names(config.train.tracking)]


class _CloseLater:
    """Passes each epoch on; `fit`'s close is ignored so that `session` closes the tracker
    after the end-of-run pictures exist (MLflow uploads them as artifacts)."""

    def __init__(self, tracker: EpochObserver) -> None:
        self.tracker = tracker

    def on_epoch(self, record: dict[str, Any], model: VAE, run_dir: Path) -> None:
        self.tracker.on_epoch(record, model, run_dir)

    def close(self, run_dir: Path) -> None:
        """Deferred to the end of `session`."""


@contextmanager
def session(config: RunConfig, run_dir: str | Path) -> Iterator[list[EpochObserver]]:
    """The config's trackers for one train or resume call: observers to hand to `fit`;
    the trackers close when the block ends, whether it finished or failed."""
    trackers = build(config, run_dir)
    try:
        yield [_CloseLater(tracker) for tracker in trackers]
    finally:
        for tracker in trackers:
            tracker.close(Path(run_dir))
