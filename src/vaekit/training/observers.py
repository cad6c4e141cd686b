"""What the training loop tells the world after each epoch, without knowing who listens.

Experiment trackers (TensorBoard, MLflow) and anything else that wants per-epoch
figures implement `EpochObserver`; `fit` calls them on rank 0 after the epoch's
record is in metrics.jsonl, and once more when the run ends or stops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from vaekit.models import VAE


class EpochObserver(Protocol):
    def on_epoch(self, record: dict[str, Any], model: VAE, run_dir: Path) -> None:
        """After each epoch: its metrics.jsonl record and the model as trained so far."""

    def close(self, run_dir: Path) -> None:
        """Once, when training ends (finished, stopped or failed)."""
