"""What the trackers log: an epoch record's numbers, and two cheap per-epoch probes.

The probes run on rank 0 after each epoch, so they must cost little: one forward
pass over a fixed batch for the KL per latent group, and one 64-image decode for
the sample grid. Fixed images, noise and seed make them comparable across epochs
and across a resume; the test-set figures are `vaekit evaluate`'s job.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vaekit import pictures
from vaekit.config import RunConfig
from vaekit.data import evaluation_images, load_data, to_unit
from vaekit.models import VAE
from vaekit.objectives import latent_kl
from vaekit.runtime import inference

PROBE_IMAGES = 256
SAMPLES = 64


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The numbers of a metrics.jsonl record, bar the epoch (the trackers' step)."""
    return {
        key: float(value)
        for key, value in record.items()
        if key != "epoch" and isinstance(value, int | float) and not isinstance(value, bool)
    }


class Probe:
    """KL(q || p) per latent group on the run's first 256 test images (under its
    binarisation protocol, seeded as `vaekit evaluate` draws it), at z sampled from the
    posterior with fixed noise; and the sample grid from a fixed seed."""

    def __init__(self, config: RunConfig, size: int = PROBE_IMAGES) -> None:
        self.config, self.size = config, size
        self.images: torch.Tensor | None = None

    def batch(self) -> torch.Tensor:
        """The probe's images in [0, 1], loaded on first use (on the CPU)."""
        if self.images is None:
            data, seed = self.config.data, self.config.train.seed
            test = load_data(data, "test").images[: self.size]
            self.images = to_unit(evaluation_images(test, data.binarize, seed))
        return self.images

    def kl_per_group(self, model: VAE) -> list[float]:
        """Batch-mean KL of each latent group (top first), nats."""
        weight = next(model.parameters())
        x = self.batch().to(weight.device)
        generator = torch.Generator().manual_seed(self.config.train.seed)
        noise = torch.randn((x.shape[0], model.noise_dim), generator=generator)
        with inference(model):
            out = model(x, noise=noise.to(weight.device, weight.dtype))
            return [latent_kl(latent).float().mean().item() for latent in out.latents]

    def sample_grid(self, model: VAE) -> np.ndarray:
        """The 8x8 grid of samples.png (unscaled), uint8, (H, W) or (H, W, 3)."""
        return pictures.grid(pictures.sample(model, SAMPLES, self.config.train.seed))
