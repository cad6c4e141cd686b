"""Config of the top-down hierarchical VAE (network: `vaekit.models.hvae`)."""

from __future__ import annotations

from dataclasses import dataclass

from vaekit.config.families.base import family_name, model_family
from vaekit.config.families.latent import PriorConfig
from vaekit.config.fields import opt


@model_family
@dataclass
class HVAEConfig(PriorConfig):
    """`groups` latent groups of `latent_dim` units, on dense residual cells `hidden_dim` wide."""

    name: str = family_name("hvae")
    latent_dim: int = opt(2, "latent units per group (groups x latent-dim in all)")
    hidden_dim: int = opt(400, "width of every residual cell, bottom-up and top-down")
    groups: int = opt(3, "number of latent groups")
