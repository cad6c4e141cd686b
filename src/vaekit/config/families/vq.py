"""Configs of the VQ-VAE and of its learned prior (networks: `vaekit.models.vq`,
`vaekit.models.vqprior`).

The VQ-VAE (van den Oord et al. 2017) is trained first; the prior, a small causal
transformer over its grid of codes, is a second run (`--model vq-prior --codes-from RUN`)
that copies the VQ-VAE's architecture fields and weights from that run and trains only
the prior, so each stage has its own folder, checkpoints and resume.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from vaekit.config.families.base import ModelConfig, family_name, model_family
from vaekit.config.fields import opt
from vaekit.errors import ConfigError


@model_family
@dataclass
class VQConfig(ModelConfig):
    """Two stride-2 convolutions to a grid of code vectors, nearest-code quantisation."""

    objectives: ClassVar[tuple[str, ...]] = ("vq",)

    name: str = family_name("vq")
    codebook_size: int = opt(128, "VQ-VAE: number of codes K in the codebook")
    code_dim: int = opt(16, "VQ-VAE: size D of each code vector")
    channels: int = opt(32, "channels of the first convolution (the second has twice as many)")
    commitment: float = opt(
        0.25, "VQ-VAE: weight beta of the commitment term ||z_e - sg(e)||^2 (the paper's 0.25)"
    )
    ema_decay: float = opt(
        0.99, "VQ-VAE: decay of the exponential moving averages that update the codebook"
    )
    dead_code_threshold: float = opt(
        1.0,
        "VQ-VAE: a code whose moving-average count falls below this restarts at an encoder "
        "output of the batch",
    )

    def validate(self) -> None:
        super().validate()
        if not 0 < self.ema_decay < 1:
            raise ConfigError(f"ema_decay must lie in (0, 1); got {self.ema_decay}")


# The fields of the VQ-VAE (likelihood and sigma too) a prior run copies from its --codes-from.
VQ_FIELDS = tuple(f.name for f in dataclasses.fields(VQConfig) if f.name != "name")


@model_family
@dataclass
class VQPriorConfig(VQConfig):
    """A causal transformer over a trained VQ-VAE's codes; samples decode to new images."""

    name: str = family_name("vq-prior")
    codes_from: str | None = opt(
        None, "vq-prior: the VQ-VAE run (folder or checkpoint) whose codes the prior learns"
    )
    prior_width: int = opt(128, "vq-prior: width of the transformer's layers")
    prior_layers: int = opt(4, "vq-prior: number of transformer layers")
    prior_heads: int = opt(4, "vq-prior: attention heads per layer")

    def validate(self) -> None:
        super().validate()
        if self.codes_from is None:
            raise ConfigError("--model vq-prior needs --codes-from RUN (a trained vq run)")
        if self.prior_width % self.prior_heads:
            raise ConfigError("--prior-width must be a multiple of --prior-heads")

    def starts_from(self) -> str | None:
        """The run whose weights the network takes before training starts."""
        return self.codes_from

    def adopt(self, source: ModelConfig) -> VQPriorConfig:
        """This config with the VQ-VAE's fields of `source`, the --codes-from run's model."""
        if type(source) is not VQConfig:
            raise ConfigError(
                f"--codes-from must name a vq run; {self.codes_from} holds a {source.name} model"
            )
        return dataclasses.replace(self, **{k: getattr(source, k) for k in VQ_FIELDS})
