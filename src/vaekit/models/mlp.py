"""The seed notebook's MLP VAE, layer for layer.

Layer names and creation order match the seed's `VAE` class, so the same
`torch.manual_seed` gives the same initial weights and a state dict of the
seed's model loads here unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vaekit.config import MLPConfig
from vaekit.likelihoods import Likelihood
from vaekit.models.base import VAE
from vaekit.models.export import Op, linear, reshape
from vaekit.models.registry import register


@register(MLPConfig)
class MLPVAE(VAE):
    """784 -> hidden (ReLU) -> (mu, logvar); latent -> hidden (ReLU) -> 784 logits."""

    def __init__(
        self, config: MLPConfig, image_shape: tuple[int, int, int], likelihood: Likelihood
    ) -> None:
        super().__init__(image_shape, config.latent_dim, likelihood)
        self.classes = config.labels if config.condition == "label" else 0
        input_dim = math.prod(image_shape)
        self.fc1 = nn.Linear(input_dim + self.classes, config.hidden_dim)
        self.fc_mu = nn.Linear(config.hidden_dim, config.latent_dim)
        self.fc_logvar = nn.Linear(config.hidden_dim, config.latent_dim)
        self.fc3 = nn.Linear(config.latent_dim + self.classes, config.hidden_dim)
        self.fc4 = nn.Linear(config.hidden_dim, math.prod(self.output_shape))

    def encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_context(x, y)[:2]

    @property
    def context_dim(self) -> int:
        return self.fc1.out_features

    def encode_context(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        h = torch.relu(self.fc1(self.with_label(x.flatten(1), y)))
        return self.fc_mu(h), self.fc_logvar(h), h

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = torch.relu(self.fc3(self.with_label(z, y)))
        return self.fc4(h).view(-1, *self.output_shape)

    def fast_layers(self) -> tuple[nn.Linear, ...]:
        """fc1, fc_mu, fc_logvar, fc3, fc4: the layers `training.fast_mlp` computes by hand
        (an unconditional model only; the fast path checks `classes`)."""
        return (self.fc1, self.fc_mu, self.fc_logvar, self.fc3, self.fc4)

    def decoder_ops(self) -> list[Op]:
        return [linear(self.fc3), {"op": "relu"}, linear(self.fc4), reshape(self.output_shape)]
