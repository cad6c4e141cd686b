"""Normalising flows on q(z|x) as pure functions: each step returns z' and log|det dz'/dz|.

A flow turns the encoder's Gaussian sample z_0 into z_T; then
log q(z_T|x) = log N(z_0; mu, sigma^2) - sum_t log|det J_t| (Rezende & Mohamed 2015,
eq. 7). The parameters (amortised from the encoder's features) live in
`vaekit.models.latent`; these functions are the arithmetic, checked against autograd.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def planar(
    z: torch.Tensor, u: torch.Tensor, w: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """f(z) = z + u' tanh(w.z + b) (Rezende & Mohamed 2015, eq. 10), z/u/w (..., D), b (...).

    u' = u + (m(w.u) - w.u) w / |w|^2 with m(a) = -1 + softplus(a) makes w.u' >= -1, so
    f is invertible (their appendix A.1); log|det| = log|1 + u'.psi|, psi = h'(.) w (eq. 12).
    """
    wu = (w * u).sum(dim=-1, keepdim=True)
    u_hat = u + (F.softplus(wu) - 1 - wu) * w / w.pow(2).sum(dim=-1, keepdim=True)
    pre = (w * z).sum(dim=-1, keepdim=True) + b.unsqueeze(-1)
    out = z + u_hat * torch.tanh(pre)
    psi = (1 - torch.tanh(pre).pow(2)) * w
    log_det = torch.log((1 + (u_hat * psi).sum(dim=-1)).abs() + 1e-8)
    return out, log_det


def iaf_step(
    z: torch.Tensor, m: torch.Tensor, s: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """z' = sigma * z + (1 - sigma) * m, sigma = sigmoid(s) (Kingma et al. 2016, eq. 14).

    m and s come from an autoregressive network of z, so dz'/dz is triangular with
    diagonal sigma and log|det| = sum log sigma.
    """
    sigma = torch.sigmoid(s)
    return sigma * z + (1 - sigma) * m, F.logsigmoid(s).sum(dim=-1)


def made_masks(dim: int, hidden: int) -> tuple[torch.Tensor, torch.Tensor]:
    """MADE masks (Germain et al. 2015) for dim -> hidden -> dim: output d sees inputs < d.

    Input degrees 1..D, hidden degrees cycle through 1..D-1, a hidden unit sees inputs
    of degree <= its own and output d sees hidden units of degree < d. Returns the
    (hidden, dim) and (dim, hidden) masks in nn.Linear's weight layout.
    """
    inputs = torch.arange(1, dim + 1)
    hidden_degrees = torch.arange(hidden) % max(1, dim - 1) + 1
    first = (hidden_degrees[:, None] >= inputs[None, :]).float()
    second = (inputs[:, None] > hidden_degrees[None, :]).float()
    return first, second
