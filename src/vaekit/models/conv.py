"""A convolutional VAE, the seed's suggested next step.

Two stride-2 convolutions halve the image twice (28 -> 14 -> 7), a dense layer
of `hidden_dim` units maps to the posterior; the decoder mirrors it with
transposed convolutions. Works for any image side divisible by 4.
"""

from __future__ import annotations

import torch
from torch import nn

from vaekit.config import ModelConfig
from vaekit.errors import ConfigError
from vaekit.likelihoods import Likelihood
from vaekit.models.base import VAE
from vaekit.models.registry import register


@register("conv")
class ConvVAE(VAE):
    """Two stride-2 convolutions -> hidden -> (mu, logvar); mirrored transposed convolutions."""

    def __init__(
        self, config: ModelConfig, image_shape: tuple[int, int, int], likelihood: Likelihood
    ) -> None:
        super().__init__(image_shape, config.latent_dim, likelihood)
        channels, height, width = image_shape
        if height % 4 or width % 4:
            raise ConfigError(f"conv model needs image sides divisible by 4; got {height}x{width}")
        c1, c2 = config.channels, 2 * config.channels
        self.feature_shape = (c2, height // 4, width // 4)
        features = c2 * (height // 4) * (width // 4)
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, c1, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(features, config.hidden_dim),
            nn.ReLU(),
        )
        self.fc_mu = nn.Linear(config.hidden_dim, config.latent_dim)
        self.fc_logvar = nn.Linear(config.hidden_dim, config.latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(config.latent_dim, config.hidden_dim),
            nn.ReLU(),
            nn.Linear(config.hidden_dim, features),
            nn.ReLU(),
            nn.Unflatten(1, self.feature_shape),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(c1, self.output_shape[0], 4, stride=2, padding=1),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)
