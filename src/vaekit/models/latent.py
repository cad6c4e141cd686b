"""The modules behind `--prior` and `--flow`: learned parameters of p(z) and of q(z|x).

`attach` gives a one-group model (config `OneGroupConfig`) its `prior` (None: N(0, I))
and `flow` (None: q(z|x) stays the encoder's Gaussian), and the hvae (`PriorConfig`)
its top group's prior. `VAE.forward` asks them for
log p(z), and for z_T with the flow's log-determinant; the arithmetic is in
`vaekit.priors` and `vaekit.flows`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from vaekit.config.families.latent import OneGroupConfig, PriorConfig
from vaekit.config.registry import FLOW, PRIOR
from vaekit.flows import iaf_step, made_masks, planar
from vaekit.priors import mixture_log_prob, mixture_sample

if TYPE_CHECKING:
    from vaekit.models.base import VAE

Encode = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class VampPrior(nn.Module):
    """p(z) = (1/K) sum_k q(z | u_k) over K learned pseudo-inputs u_k (Tomczak & Welling
    2018): the prior the aggregate posterior would choose, at the cost of K encoder passes.

    The pseudo-inputs are stored as logits and squashed into [0, 1], the images' range.
    Each component is the encoder's Gaussian, before any flow (a flowed q has no density
    at an arbitrary z without inverting the flow).
    """

    def __init__(self, count: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.pseudo_inputs = nn.Parameter(0.01 * torch.randn(count, *image_shape))

    def components(self, encode: Encode) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixture's means and log-variances (K, D)."""
        return encode(torch.sigmoid(self.pseudo_inputs))

    def log_prob(self, z: torch.Tensor, encode: Encode) -> torch.Tensor:
        return mixture_log_prob(z, *self.components(encode))

    def sample(self, n: int, encode: Encode, generator: torch.Generator | None) -> torch.Tensor:
        mu, logvar = self.components(encode)
        return mixture_sample(mu, logvar, n, generator)


class PlanarFlow(nn.Module):
    """`steps` planar maps whose u, w, b the encoder's features give per example
    (amortised, as in Rezende & Mohamed 2015, section 4.2)."""

    def __init__(self, dim: int, context_dim: int, steps: int) -> None:
        super().__init__()
        self.dim, self.steps = dim, steps
        self.params = nn.Linear(context_dim, steps * (2 * dim + 1))

    def forward(self, z: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = torch.zeros(z.shape[:-1], device=z.device, dtype=z.dtype)
        for step in self.params(context).to(z.dtype).chunk(self.steps, dim=-1):
            u, w, b = step.split([self.dim, self.dim, 1], dim=-1)
            z, step_log_det = planar(z, u, w, b.squeeze(-1))
            log_det = log_det + step_log_det
        return z, log_det


class IAFStep(nn.Module):
    """One IAF step (Kingma et al. 2016): a MADE of z plus the context gives m and s.

    The context also reaches m and s directly, so the first unit (which sees no z)
    still depends on x. s starts near +2 (sigma ~ 0.9): each step begins close to
    the identity, as the paper's forget-gate initialisation intends.
    """

    def __init__(self, dim: int, context_dim: int, hidden: int) -> None:
        super().__init__()
        first, second = made_masks(dim, hidden)
        self.register_buffer("mask_in", first, persistent=False)
        self.register_buffer("mask_out", second.repeat(2, 1), persistent=False)
        self.z_in = nn.Linear(dim, hidden)
        self.context_in = nn.Linear(context_dim, hidden)
        self.out = nn.Linear(hidden, 2 * dim)
        self.context_out = nn.Linear(context_dim, 2 * dim)
        with torch.no_grad():
            self.out.bias[dim:] = 2.0

    def forward(self, z: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        context = context.to(z.dtype)
        h = F.elu(F.linear(z, self.z_in.weight * self.mask_in, self.z_in.bias))
        h = h + self.context_in(context)
        ms = F.linear(h, self.out.weight * self.mask_out, self.out.bias)
        m, s = (ms + self.context_out(context)).chunk(2, dim=-1)
        return iaf_step(z, m, s)


class IAF(nn.Module):
    """`steps` IAF steps, the order of z's units reversed between steps (a permutation:
    log-determinant 0), so every unit is conditioned on every other over two steps."""

    def __init__(self, dim: int, context_dim: int, steps: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            IAFStep(dim, context_dim, max(16, 4 * dim)) for _ in range(steps)
        )

    def forward(self, z: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = torch.zeros(z.shape[:-1], device=z.device, dtype=z.dtype)
        for i, layer in enumerate(self.layers):
            if i:
                z = z.flip(-1)
            z, step_log_det = layer(z, context)
            log_det = log_det + step_log_det
        return z, log_det


def _none(config: OneGroupConfig, model: VAE) -> None:
    return None


PRIOR.register("normal", _none)
PRIOR.register("vamp", lambda config, model: VampPrior(config.pseudo_inputs, model.image_shape))
FLOW.register("none", _none)
FLOW.register(
    "planar",
    lambda config, model: PlanarFlow(model.latent_dim, model.context_dim, config.flow_steps),
)
FLOW.register(
    "iaf", lambda config, model: IAF(model.latent_dim, model.context_dim, config.flow_steps)
)


def attach(model: VAE, config: object) -> VAE:
    """Give a one-group model the prior and flow its config names (others: unchanged).

    Called after the network is built, so a model without them initialises exactly
    as before and its checkpoints keep their keys."""
    if isinstance(config, PriorConfig):  # the one-group families, the hvae's top group
        model.prior = PRIOR.get(config.prior)(config, model)
    if isinstance(config, OneGroupConfig):
        model.flow = FLOW.get(config.flow)(config, model)
    return model
