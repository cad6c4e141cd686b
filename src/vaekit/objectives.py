"""Losses and estimators as pure functions of tensors, one value per example.

Shapes: x and logits (B, C, H, W); mu and logvar (B, D). Everything returns (B,)
so training can sum and evaluation can keep per-example values. Where k samples
share one example, they sit in a dimension after the batch, (B, k, ...), and the
example broadcasts against them as (B, 1, ...).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


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


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor, event_dims: int = 3) -> torch.Tensor:
    """-log p(x|z) for a Bernoulli decoder: binary cross-entropy summed over pixels.

    Computed from logits (log-sum-exp form), which stays finite where the seed's
    sigmoid-then-BCE saturates. x may be grey levels in [0, 1], as in the seed.
    The last `event_dims` dimensions (C, H, W) are summed; x broadcasts against
    the logits, so k decoded samples (B, k, C, H, W) score one image (B, 1, C, H, W).
    """
    logits = _at_least_fp32(logits)
    target = x.to(logits.dtype).expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return bce.flatten(-event_dims).sum(dim=-1)


def gaussian_log_prob(
    x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, event_dims: int = 1
) -> torch.Tensor:
    """log N(x; mean, diag(exp(logvar))), summed over the last `event_dims` dimensions.

    Serves q(z|x) and p(z) in the importance weights and any Gaussian decoder
    p(x|z); arguments broadcast against each other.
    """
    x, mean, logvar = (_at_least_fp32(t) for t in (x, mean, logvar))
    log_density = -0.5 * (LOG_2PI + logvar + (x - mean).pow(2) * torch.exp(-logvar))
    return log_density.flatten(-event_dims).sum(dim=-1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), the prior p(z), summed over the last (latent) dimension."""
    z = _at_least_fp32(z)
    return -0.5 * (LOG_2PI + z.pow(2)).sum(dim=-1)


def log_importance_weights(
    log_px_given_z: torch.Tensor, log_pz: torch.Tensor, log_qz: torch.Tensor
) -> torch.Tensor:
    """log w = log p(x|z) + log p(z) - log q(z|x), for z ~ q(z|x); any matching shape."""
    return log_px_given_z + log_pz - log_qz


def importance_weighted_log_likelihood(log_weights: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The importance-weighted estimate of log p(x): log (1/k) sum_i w_i over `dim`.

    Burda, Grosse & Salakhutdinov (2015), eq. 8: a lower bound on log p(x) in
    expectation that rises with k towards it; with k = 1 it is the one-sample ELBO.
    logsumexp keeps it finite where the weights themselves under- or overflow.
    """
    k = log_weights.shape[dim]
    return torch.logsumexp(_at_least_fp32(log_weights), dim=dim) - math.log(k)


def negative_elbo(
    x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> dict[str, torch.Tensor]:
    """-ELBO = reconstruction (-log p(x|z), one z sample) + KL(q(z|x) || p(z)), per example."""
    recon = bernoulli_nll(logits, x)
    kl = gaussian_kl(_at_least_fp32(mu), _at_least_fp32(logvar))
    return {"loss": recon + kl, "recon": recon, "kl": kl}
