"""Losses as pure functions of tensors, one value per example.

Shapes: x and logits (B, C, H, W); mu and logvar (B, D). Everything returns (B,)
so training can sum and evaluation can keep per-example values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """Losses are summed over hundreds of pixels: do that in fp32 even under autocast."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over latent dimensions.

    Closed form from Kingma & Welling (2014), appendix B:
    -1/2 * sum(1 + log sigma^2 - mu^2 - sigma^2).
    """
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def gaussian_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The same KL, kept per latent dimension: (B, D)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) for a Bernoulli decoder: binary cross-entropy summed over pixels.

    Computed from logits (log-sum-exp form), which stays finite where the seed's
    sigmoid-then-BCE saturates. x may be grey levels in [0, 1], as in the seed.
    """
    logits = _at_least_fp32(logits)
    bce = F.binary_cross_entropy_with_logits(logits, x.to(logits.dtype), reduction="none")
    return bce.flatten(1).sum(dim=1)


def negative_elbo(
    x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> dict[str, torch.Tensor]:
    """-ELBO = reconstruction (-log p(x|z), one z sample) + KL(q(z|x) || p(z)), per example."""
    recon = bernoulli_nll(logits, x)
    kl = gaussian_kl(_at_least_fp32(mu), _at_least_fp32(logvar))
    return {"loss": recon + kl, "recon": recon, "kl": kl}
