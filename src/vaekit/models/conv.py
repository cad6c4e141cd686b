"""A convolutional VAE, the seed's suggested next step.

Two stride-2 convolutions halve the image twice (28 -> 14 -> 7), a dense layer
of `hidden_dim` units maps to the posterior; the decoder mirrors it with
transposed convolutions. Works for any image side divisible by 4.
"""

from __future__ import annotations

from torch import nn

from vaekit.config import ConvConfig
from vaekit.likelihoods import Likelihood
from vaekit.models.base import EncoderDecoderVAE, quarter_features
from vaekit.models.registry import register


@register(ConvConfig)
class ConvVAE(EncoderDecoderVAE):
    """Two stride-2 convolutions -> hidden -> (mu, logvar); mirrored transposed convolutions."""

    def __init__(
        self, config: ConvConfig, image_shape: tuple[int, int, int], likelihood: Likelihood
    ) -> None:
        super().__init__(image_shape, config.latent_dim, likelihood)
        self.classes = config.labels if config.condition == "label" else 0
        channels = image_shape[0]
        c1, c2 = config.channels, 2 * config.channels
        self.feature_shape, features = quarter_features("conv", image_shape, c2)
        self.encoder = nn.Sequential(
            nn.Conv2d(channels + self.classes, c1, 4, stride=2, padding=1),
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
            nn.Linear(config.latent_dim + self.classes, config.hidden_dim),
            nn.ReLU(),
            nn.Linear(config.hidden_dim, features),
            nn.ReLU(),
            nn.Unflatten(1, self.feature_shape),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(c1, self.output_shape[0], 4, stride=2, padding=1),
        )
