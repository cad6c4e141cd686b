"""Train the seed notebook's VAE with pythae's TrainingPipeline and time each epoch.

Standalone on purpose: it imports only pythae, torch and numpy, so it runs in the
separate virtual environment that holds pythae (which vaekit never depends on):

    .venv-pythae/bin/python src/vaekit/bench/pythae_driver.py --images train.npy --epochs 3

`--images` is a uint8 array (N, 28, 28) saved with numpy. The model is the seed's,
784-400-2 / 2-400-784 with a sigmoid output, written in pythae's encoder/decoder API,
scored with pythae's own BCE loss ("bce"), trained with Adam (lr 1e-3) on batches of
128. pythae averages the loss over the batch where the seed sums it; Adam is
invariant to that scale up to its epsilon. `--device` (cpu, cuda or cuda:N; default
cpu) is the device pythae trains on: `vaekit bench` passes its own, so both pipelines
are timed on the same one. The last line printed is a JSON record: seconds per epoch
(from the trainer's epoch-begin to epoch-end callbacks, so the pipeline's setup is left
out), the per-sample training loss per epoch, the device asked for and the
process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import tempfile
import time

import numpy as np
import torch
from pythae.models import VAE, VAEConfig
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn import BaseDecoder, BaseEncoder
from pythae.pipelines import TrainingPipeline
from pythae.trainers import BaseTrainerConfig
from pythae.trainers.training_callbacks import TrainingCallback
from torch import nn


class SeedEncoder(BaseEncoder):
    """The seed's encoder: 784 -> 400 (ReLU) -> (mu, logvar) of size 2."""

    def __init__(self, hidden: int, latent: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, hidden)
        self.fc_mu = nn.Linear(hidden, latent)
        self.fc_logvar = nn.Linear(hidden, latent)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        h = torch.relu(self.fc1(x.reshape(x.shape[0], -1)))
        return ModelOutput(embedding=self.fc_mu(h), log_covariance=self.fc_logvar(h))


class SeedDecoder(BaseDecoder):
    """The seed's decoder: 2 -> 400 (ReLU) -> 784, sigmoid."""

    def __init__(self, hidden: int, latent: int) -> None:
        super().__init__()
        self.fc3 = nn.Linear(latent, hidden)
        self.fc4 = nn.Linear(hidden, 784)

    def forward(self, z: torch.Tensor) -> ModelOutput:
        out = torch.sigmoid(self.fc4(torch.relu(self.fc3(z))))
        return ModelOutput(reconstruction=out.reshape(z.shape[0], 1, 28, 28))


class EpochTimer(TrainingCallback):
    """Wall time from the start to the end of each epoch, and the epoch's mean loss."""

    def __init__(self) -> None:
        self.started = 0.0
        self.seconds: list[float] = []
        self.losses: list[float] = []

    def on_epoch_begin(self, training_config, **kwargs) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, training_config, **kwargs) -> None:
        self.seconds.append(time.perf_counter() - self.started)

    def on_log(self, training_config, logs, **kwargs) -> None:
        if "train_epoch_loss" in logs:
            self.losses.append(float(logs["train_epoch_loss"]))


def select_device(name: str) -> bool:
    """Whether pythae should train on CUDA; for cuda:N, make N the current device.

    A single-process pythae trainer takes "cuda" (the current device) unless told
    `no_cuda`, so the index is chosen through the current device.
    """
    device = torch.device(name)
    if device.type == "cpu":
        return False
    if device.type != "cuda" or not torch.cuda.is_available():
        raise SystemExit(f"pythae_driver: device {name!r} is not available (cpu or cuda)")
    if device.index is not None:
        torch.cuda.set_device(device.index)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help=".npy file of uint8 images (N, 28, 28)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=400)
    parser.add_argument("--latent", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args()
    use_cuda = select_device(args.device)

    logging.getLogger("pythae").setLevel(logging.WARNING)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("pythae"):
            logging.getLogger(name).setLevel(logging.WARNING)
    torch.manual_seed(args.seed)
    images = np.load(args.images)
    data = torch.from_numpy(images).float().div(255).reshape(-1, 1, 28, 28)
    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=args.latent, reconstruction_loss="bce")
    model = VAE(
        config, SeedEncoder(args.hidden, args.latent), SeedDecoder(args.hidden, args.latent)
    )
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as out:
        training = BaseTrainerConfig(
            output_dir=out,
            num_epochs=args.epochs,
            learning_rate=args.lr,
            per_device_train_batch_size=args.batch_size,
            optimizer_cls="Adam",
            seed=args.seed,
            no_cuda=not use_cuda,
        )
        TrainingPipeline(model=model, training_config=training)(train_data=data, callbacks=[timer])
    record = {
        "seconds": timer.seconds,
        # pythae logs the mean over batches of the per-sample loss
        "losses": timer.losses,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "device": args.device if use_cuda else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    sys.stdout.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
