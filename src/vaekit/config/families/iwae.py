"""Configs of Burda et al.'s MNIST networks (network: `vaekit.models.iwae`)."""

from __future__ import annotations

from dataclasses import dataclass

from vaekit.config.families.base import ModelConfig, family_name, model_family
from vaekit.config.families.latent import OneGroupConfig
from vaekit.config.fields import opt


@model_family
@dataclass
class IWAE1LConfig(OneGroupConfig):
    """One stochastic layer: x -> hidden -> hidden (tanh) -> z, and back the same way."""

    name: str = family_name("iwae-1l")
    latent_dim: int = opt(2, "size of the latent space")
    hidden_dim: int = opt(400, "width of the two tanh layers on each side of z")


@model_family
@dataclass
class IWAE2LConfig(ModelConfig):
    """Two stochastic layers: z1 (2 x latent_dim units) below z2 (latent_dim units)."""

    name: str = family_name("iwae-2l")
    latent_dim: int = opt(2, "size of the top latent z2 (z1 has twice as many units)")
    hidden_dim: int = opt(
        400, "width of the tanh layers between x and z1 (those between z1 and z2: half)"
    )
