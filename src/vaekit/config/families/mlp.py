"""Config of the seed notebook's MLP VAE (network: `vaekit.models.mlp`)."""

from __future__ import annotations

from dataclasses import dataclass

from vaekit.config.families.base import family_name, model_family
from vaekit.config.families.latent import OneGroupConfig
from vaekit.config.fields import opt
from vaekit.config.registry import CONDITION
from vaekit.errors import ConfigError


@model_family
@dataclass
class MLPConfig(OneGroupConfig):
    """x -> hidden (ReLU) -> z -> hidden (ReLU) -> x, as in the seed notebook."""

    name: str = family_name("mlp")
    latent_dim: int = opt(2, "size of the latent space")
    hidden_dim: int = opt(400, "width of the hidden layer of the encoder and of the decoder")
    condition: str = opt(
        "none",
        "none, or label: a conditional VAE (Sohn et al. 2015), the one-hot label into the "
        "encoder and the decoder; `vaekit sample --label`, -log p(x|y) in `vaekit evaluate`",
        choices=CONDITION,
    )
    labels: int = opt(10, "conditional VAE: number of labels (0 .. labels-1)")

    def validate(self) -> None:
        super().validate()
        if self.condition == "label" and self.prior == "vamp":
            raise ConfigError("--condition label does not combine with --prior vamp")
