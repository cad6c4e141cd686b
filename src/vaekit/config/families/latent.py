"""The latent options shared between families: conditioning on a label, the prior, the flow.

A richer prior or posterior changes only how z is scored, not the network around it,
and a label is one more input to the encoder and the decoder, so these fields are
declared once: `ConditionalConfig` (every family but iwae-2l), `PriorConfig` (its
VampPrior: the one-group families and the hvae's top group) and `OneGroupConfig`
(the flow on q(z|x): mlp, conv, resconv, iwae-1l). The modules behind the names live
in `vaekit.models.latent`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vaekit.config.families.base import ModelConfig
from vaekit.config.fields import opt
from vaekit.config.registry import CONDITION, FLOW, PRIOR
from vaekit.errors import ConfigError


@dataclass
class ConditionalConfig(ModelConfig):
    """The fields of a family that can be a conditional VAE (Sohn et al. 2015)."""

    condition: str = opt(
        "none",
        "none, or label: a conditional VAE (Sohn et al. 2015), the one-hot label into the "
        "encoder and the decoder (the hvae: into its top-down path); `vaekit sample --label`, "
        "-log p(x|y) in `vaekit evaluate`",
        choices=CONDITION,
    )
    labels: int = opt(10, "conditional VAE: number of labels (0 .. labels-1)")


@dataclass
class PriorConfig(ConditionalConfig):
    """The fields of a family whose (top) latent group may have a learned prior."""

    prior: str = opt(
        "normal",
        "p(z) (hvae: of the top group): normal (N(0, I)) or vamp (VampPrior, Tomczak & "
        "Welling 2018: the mean of the encoder's q(z|u_k) over --pseudo-inputs learned u_k)",
        choices=PRIOR,
    )
    pseudo_inputs: int = opt(500, "VampPrior: number of learned pseudo-inputs (components)")

    def validate(self) -> None:
        super().validate()
        if self.condition == "label" and self.prior == "vamp":
            raise ConfigError("--condition label does not combine with --prior vamp")


@dataclass
class OneGroupConfig(PriorConfig):
    """The fields of a model with one latent group: its prior and its posterior's flow."""

    # beta-TCVAE and FactorVAE read one diagonal Gaussian group (`vaekit.disentangle`).
    objectives: ClassVar[tuple[str, ...]] = ("elbo", "iwae", "beta-tcvae", "factorvae")

    flow: str = opt(
        "none",
        "q(z|x): none (diagonal Gaussian), planar (Rezende & Mohamed 2015) or iaf (inverse "
        "autoregressive flow, Kingma et al. 2016), --flow-steps steps after the Gaussian",
        choices=FLOW,
    )
    flow_steps: int = opt(4, "flow: number of planar or IAF steps on q(z|x)")
