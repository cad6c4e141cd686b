"""The latent options of the one-group families (mlp, conv, resconv, iwae-1l).

A richer prior or posterior changes only how z is scored, not the network around it,
so these fields are shared by every family with one latent group; the modules behind
the names live in `vaekit.models.latent`.
"""

from __future__ import annotations

from dataclasses import dataclass

from vaekit.config.families.base import ModelConfig
from vaekit.config.fields import opt
from vaekit.config.registry import FLOW, PRIOR


@dataclass
class OneGroupConfig(ModelConfig):
    """The fields of a model with one latent group: its prior and its posterior's flow."""

    prior: str = opt(
        "normal",
        "p(z): normal (N(0, I)) or vamp (VampPrior, Tomczak & Welling 2018: the mean of the "
        "encoder's q(z|u_k) over --pseudo-inputs learned inputs u_k)",
        choices=PRIOR,
    )
    pseudo_inputs: int = opt(500, "VampPrior: number of learned pseudo-inputs (components)")
    flow: str = opt(
        "none",
        "q(z|x): none (diagonal Gaussian), planar (Rezende & Mohamed 2015) or iaf (inverse "
        "autoregressive flow, Kingma et al. 2016), --flow-steps steps after the Gaussian",
        choices=FLOW,
    )
    flow_steps: int = opt(4, "flow: number of planar or IAF steps on q(z|x)")
