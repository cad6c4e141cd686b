"""Configs of the convolutional VAEs (networks: `vaekit.models.conv`, `vaekit.models.resconv`)."""

from __future__ import annotations

from dataclasses import dataclass

from vaekit.config.families.base import family_name, model_family
from vaekit.config.families.latent import OneGroupConfig
from vaekit.config.fields import opt


@model_family
@dataclass
class ConvConfig(OneGroupConfig):
    """Two stride-2 convolutions -> a dense layer -> z; the decoder mirrors it."""

    name: str = family_name("conv")
    latent_dim: int = opt(2, "size of the latent space")
    hidden_dim: int = opt(400, "width of the dense layer between the convolutions and z")
    channels: int = opt(32, "channels of the first convolution (the second has twice as many)")


@model_family
@dataclass
class ResConvConfig(ConvConfig):
    """The conv family's sizes, with a residual cell after each convolution."""

    name: str = family_name("resconv")
