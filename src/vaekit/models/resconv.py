"""A residual convolutional VAE: the conv model with residual cells at each resolution.

Two stride-2 convolutions take the image to a quarter of its side (28 -> 7,
32 -> 8, 64 -> 16), each followed by a residual cell; a dense layer of
`hidden_dim` units maps to the posterior. The decoder mirrors it. Any image
side divisible by 4, 1 or 3 channels.
"""

from __future__ import annotations

from torch import nn

from vaekit.config import ResConvConfig
from vaekit.likelihoods import Likelihood
from vaekit.models.base import EncoderDecoderVAE, quarter_features
from vaekit.models.blocks import ResidualCell
from vaekit.models.registry import register


@register(ResConvConfig)
class ResConvVAE(EncoderDecoderVAE):
    """Strided convolutions with residual cells -> hidden -> (mu, logvar); mirrored decoder."""

    def __init__(
        self, config: ResConvConfig, image_shape: tuple[int, int, int], likelihood: Likelihood
    ) -> None:
        super().__init__(image_shape, config.latent_dim, likelihood)
        self.classes = config.labels if config.condition == "label" else 0
        channels = image_shape[0]
        c1, c2 = config.channels, 2 * config.channels
        feature_shape, features = quarter_features("resconv", image_shape, c2)
        self.encoder = nn.Sequential(
            nn.Conv2d(channels + self.classes, c1, 4, stride=2, padding=1),
            ResidualCell(c1, conv=True),
            nn.SiLU(),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1),
            ResidualCell(c2, conv=True),
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(features, config.hidden_dim),
            nn.SiLU(),
        )
        self.fc_mu = nn.Linear(config.hidden_dim, config.latent_dim)
        self.fc_logvar = nn.Linear(config.hidden_dim, config.latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(config.latent_dim + self.classes, config.hidden_dim),
            nn.SiLU(),
            nn.Linear(config.hidden_dim, features),
            nn.Unflatten(1, feature_shape),
            ResidualCell(c2, conv=True),
            nn.SiLU(),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1),
            ResidualCell(c1, conv=True),
            nn.SiLU(),
            nn.ConvTranspose2d(c1, self.output_shape[0], 4, stride=2, padding=1),
        )
