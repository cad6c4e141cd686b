"""The VQ-VAE (van den Oord et al. 2017): a conv encoder to a grid of code vectors,
nearest-code quantisation with the straight-through estimator, a conv decoder.

The codebook is not learnt by gradient: under training each forward pass moves it by
exponential moving averages of the encoder outputs assigned to each code (the paper's
appendix A.1) and restarts codes nobody has used lately at encoder outputs of the
batch. Its state lives in buffers, so checkpoints carry it and a resume is exact. The
forward pass returns p(x|z)'s parameters and the `Codes` the `vq` objective scores.
"""

from __future__ import annotations

import torch
from torch import nn

from vaekit.codebook import ema_update, nearest_codes, restart_dead_codes
from vaekit.config import VQConfig
from vaekit.errors import ConfigError
from vaekit.likelihoods import Likelihood
from vaekit.models.base import VAE, Codes, VAEOutput, quarter_features
from vaekit.models.registry import register


class Quantiser(nn.Module):
    """K code vectors of size D, updated by moving averages; assigns each input its nearest."""

    def __init__(self, size: int, dim: int, decay: float, threshold: float) -> None:
        super().__init__()
        self.size, self.dim, self.decay, self.threshold = size, dim, decay, threshold
        # Counts start at zero: the first training step finds every unused code dead and
        # restarts it at an encoder output, a data-dependent initialisation.
        self.register_buffer("codebook", torch.randn(size, dim))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("code_sum", torch.zeros(size, dim))
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_e (B, D, h, w) -> (indices (B, h, w), their codes (B, D, h, w)), both without
        gradient; under training the codebook then takes one EMA step on this batch."""
        batch, dim, height, width = z_e.shape
        flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, dim).float()
        indices = nearest_codes(flat, self.codebook)
        z_q = self.codebook[indices].reshape(batch, height, width, dim).permute(0, 3, 1, 2)
        if self.training:
            self.update(flat, indices)
        return indices.reshape(batch, height, width), z_q.to(z_e.dtype)

    @torch.no_grad()
    def update(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        size, total, codebook = ema_update(
            self.cluster_size, self.code_sum, flat, indices, self.decay
        )
        size, total, codebook, count = restart_dead_codes(
            size, total, codebook, flat, self.threshold
        )
        self.cluster_size.copy_(size)
        self.code_sum.copy_(total)
        self.codebook.copy_(codebook)
        self.restarts += count


@register(VQConfig)
class VQVAE(VAE):
    """Two stride-2 convolutions to a grid of codes (7 x 7 for MNIST); mirrored decoder."""

    gaussian_latents = False
    explorer_note = "A VQ-VAE has a grid of discrete codes, not a z to set with sliders."

    def __init__(
        self, config: VQConfig, image_shape: tuple[int, int, int], likelihood: Likelihood
    ) -> None:
        self.grid_shape, features = quarter_features("vq", image_shape, config.code_dim)
        super().__init__(image_shape, features, likelihood)
        c1, c2, dim = config.channels, 2 * config.channels, config.code_dim
        self.encoder = nn.Sequential(
            nn.Conv2d(image_shape[0], c1, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(c2, dim, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(dim, c2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(c1, self.output_shape[0], 4, stride=2, padding=1),
        )
        size = config.codebook_size
        self.quantiser = Quantiser(size, dim, config.ema_decay, config.dead_code_threshold)
        self.commitment = config.commitment

    @property
    def noise_dim(self) -> int:
        return 0  # nothing random in a pass: q(z|x) is a point mass on the nearest codes

    @property
    def positions(self) -> int:
        return self.grid_shape[1] * self.grid_shape[2]

    def quantise(self, x: torch.Tensor) -> Codes:
        """Encode x and assign every grid position its nearest code."""
        z_e = self.encoder(x)
        indices, z_q = self.quantiser(z_e)
        return Codes(z_e, z_q, indices, self.quantiser.size, self.commitment)

    def forward(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        k: int | None = None,
        y: torch.Tensor | None = None,
    ) -> VAEOutput:
        """Codes and p(x|z_q)'s parameters; the decoder's input is z_e + sg(z_q - z_e), so
        its gradient passes to the encoder unchanged (straight-through, section 3.1)."""
        codes = self.quantise(x)
        params = self.decoder(codes.z_e + (codes.z_q - codes.z_e).detach())
        return VAEOutput([], with_samples(params, k), codes)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise ConfigError("a vq model's latents are discrete codes: it has no posterior mean")

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Code vectors, flattened (B, D*h*w), -> parameters of p(x|z)."""
        return self.decoder(z.reshape(z.shape[0], *self.grid_shape))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices (B, h, w) -> parameters of p(x|z)."""
        z_q = self.quantiser.codebook[indices].permute(0, 3, 1, 2)
        return self.decoder(z_q.to(self.decoder[0].weight.dtype))

    def generate(
        self, n: int, generator: torch.Generator | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Codes drawn from the uniform prior the VQ-VAE is trained under; a `vq-prior`
        run, trained on this run's codes, draws them from a learned prior instead."""
        device = self.quantiser.codebook.device
        shape = (n, *self.grid_shape[1:])
        indices = torch.randint(self.quantiser.size, shape, generator=generator, device=device)
        return self.decode_indices(indices)

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(self.quantise(x).z_q)


def with_samples(params: torch.Tensor, k: int | None) -> torch.Tensor:
    """(B, ...) as (B, k, ...) when k samples per example are asked for: q(z|x) is a point
    mass, so every sample is the same."""
    return params if k is None else params.unsqueeze(1).expand(-1, k, *params.shape[1:])
