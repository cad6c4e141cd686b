"""`--log tensorboard`: event files in RUN_DIR/tensorboard (`tensorboard --logdir RUN_DIR`).

Per epoch (the step): every number of the metrics.jsonl record under its key with
the split as a prefix (train_loss -> train/loss, test_kl -> test/kl, lr,
train/skipped, seconds), the probe's KL per latent group (probe/kl_group_<g>,
top group 0), and the sample grid as the image "samples". A resumed run writes a
new event file into the same folder, so the curves continue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vaekit.config import RunConfig
from vaekit.extras import require
from vaekit.models import VAE
from vaekit.runfolder import TENSORBOARD, RunFolder
from vaekit.tracking.measures import Probe, scalars


def tag(key: str) -> str:
    """A metrics.jsonl key as a TensorBoard tag: the split becomes a section."""
    for split in ("train", "test"):
        if key.startswith(f"{split}_"):
            return f"{split}/{key.removeprefix(f'{split}_')}"
    return key


class TensorBoardLogger:
    """Writes each epoch's figures and sample grid as TensorBoard events."""

    def __init__(self, config: RunConfig, run_dir: Path) -> None:
        require("tensorboard", "tensorboard", "--log tensorboard")
        self.logdir = RunFolder(run_dir).file(TENSORBOARD)
        self.probe = Probe(config)
        self.writer: Any = None  # opened at the first epoch, so a failed start leaves no files

    def on_epoch(self, record: dict[str, Any], model: VAE, run_dir: Path) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.logdir))
        step = int(record["epoch"])
        for key, value in scalars(record).items():
            self.writer.add_scalar(tag(key), value, step)
        for group, kl in enumerate(self.probe.kl_per_group(model)):
            self.writer.add_scalar(f"probe/kl_group_{group}", kl, step)
        grid = self.probe.sample_grid(model)
        self.writer.add_image("samples", grid, step, dataformats="HW" if grid.ndim == 2 else "HWC")
        self.writer.flush()  # a stopped run's curves are complete up to its last epoch

    def close(self, run_dir: Path) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
