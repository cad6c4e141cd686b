"""Priors beyond N(0, I) as pure functions of tensors: log density and sampling.

The VampPrior (Tomczak & Welling 2018, eq. 9) is p(z) = (1/K) sum_k q(z | u_k), a
uniform mixture of K diagonal Gaussians whose parameters (K, D) the encoder gives at
K learned pseudo-inputs; the model holds the pseudo-inputs (`vaekit.models.latent`).
Kept apart from the networks so the density can be checked by hand.
"""

from __future__ import annotations

import math

import torch

from vaekit.likelihoods import LOG_2PI, at_least_fp32


def mixture_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log (1/K) sum_k N(z; mu_k, diag(exp(logvar_k))) for z (..., D), mu/logvar (K, D) -> (...).

    The squared distances are expanded, sum_d (z_d^2 - 2 z_d mu_kd + mu_kd^2) / var_kd,
    so that they are two matrix products (..., D) x (D, K) instead of a (..., K, D)
    tensor: the k = 5000 estimate with K = 500 components is then feasible on a CPU.
    logsumexp over the components keeps it finite where each density underflows.
    """
    z, mu, logvar = (at_least_fp32(t) for t in (z, mu, logvar))
    precision = torch.exp(-logvar)  # (K, D)
    constant = (LOG_2PI + logvar + mu.pow(2) * precision).sum(dim=-1)  # (K,)
    squared = z.pow(2) @ precision.T - 2 * (z @ (mu * precision).T)  # (..., K)
    per_component = -0.5 * (constant + squared)
    return torch.logsumexp(per_component, dim=-1) - math.log(mu.shape[0])


def mixture_sample(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    n: int,
    generator: torch.Generator | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """n draws (n, D) from a diagonal Gaussian mixture: pick a component (uniformly, or by
    `weights` (K,)), then sample it (ancestral sampling, Tomczak & Welling 2018, sec. 3)."""
    if weights is None:
        index = torch.randint(mu.shape[0], (n,), generator=generator, device=mu.device)
    else:
        index = torch.multinomial(weights, n, replacement=True, generator=generator)
    eps = torch.randn((n, mu.shape[1]), generator=generator, device=mu.device, dtype=mu.dtype)
    return mu[index] + eps * torch.exp(0.5 * logvar[index])


def mixture_moments(
    mu: torch.Tensor, logvar: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and per-dimension variance (D,) of a diagonal Gaussian mixture (law of total
    variance: E[var] + var[E])."""
    if weights is None:
        weights = torch.full((mu.shape[0],), 1.0 / mu.shape[0], dtype=mu.dtype, device=mu.device)
    w = weights[:, None]
    mean = (w * mu).sum(dim=0)
    variance = (w * (logvar.exp() + mu.pow(2))).sum(dim=0) - mean.pow(2)
    return mean, variance
