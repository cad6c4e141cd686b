"""Checkpoints worth keeping besides the last: the best epoch, and every N-th.

best.safetensors holds the weights (no optimiser state) of the epoch with the lowest
validation loss, or, in a run without a validation split, the lowest per-epoch test
loss (said when training ends, since choosing on the test set biases what it reports).
`--keep-every N` keeps a full copy of every N-th epoch's checkpoint. `vaekit sample`,
`evaluate` and the rest read the last checkpoint unless given one of these files.
"""

from __future__ import annotations

from typing import Any

from vaekit import checkpoint
from vaekit.files import write_atomic
from vaekit.runfolder import BEST, PERIODIC, RunFolder
from vaekit.training.state import State, weights_checkpoint


def monitored(state: State) -> str:
    """The record key best.safetensors is chosen by."""
    return "val_loss" if state.config.data.validation else "test_loss"


def summary(state: State, folder: RunFolder) -> str | None:
    """The line after training that says which epoch best.safetensors holds, chosen how."""
    best = folder.file(BEST)
    if not best.is_file():
        return None
    key = monitored(state)
    progress = checkpoint.load(best).progress
    line = f"{best} holds epoch {progress['epoch']} ({key} {progress[key]:.4f})"
    if key == "test_loss":
        line += (
            ", chosen on the test set: there is no validation split "
            "(--validation N holds out N training examples to choose on)"
        )
    return line


def keep(
    state: State, folder: RunFolder, record: dict[str, Any], image_shape: tuple[int, int, int]
) -> None:
    """After an epoch's record and checkpoint: refresh best.safetensors when this epoch's
    monitored loss is the lowest so far (the earlier ones are in metrics.jsonl), and copy
    a periodic checkpoint."""
    key = monitored(state)
    best = folder.file(BEST)
    earlier = [r[key] for r in folder.read_metrics() if r["epoch"] < state.epoch and key in r]
    if not best.is_file() or not earlier or record[key] < min(earlier):
        progress = {"epoch": state.epoch, key: record[key]}
        checkpoint.save(weights_checkpoint(state, image_shape, progress), best)
    every = state.config.train.keep_every
    if every and state.epoch % every == 0:  # a copy that is whole or absent, like the original
        write_atomic(
            folder.file(PERIODIC.format(epoch=state.epoch)), folder.checkpoint.read_bytes()
        )
