"""Config of the seed notebook's MLP VAE (network: `vaekit.models.mlp`)."""

from __future__ import annotations

from dataclasses import dataclass

from vaekit.config.families.base import family_name, model_family
from vaekit.config.families.latent import OneGroupConfig
from vaekit.config.fields import opt


@model_family
@dataclass
class MLPConfig(OneGroupConfig):
    """x -> hidden (ReLU) -> z -> hidden (ReLU) -> x, as in the seed notebook."""

    name: str = family_name("mlp")
    latent_dim: int = opt(2, "size of the latent space")
    hidden_dim: int = opt(400, "width of the hidden layer of the encoder and of the decoder")
