"""A Gaussian mixture fitted by EM to the training set's posterior means: a sampler.

A VAE's aggregate posterior rarely fills N(0, I); decoding draws from a mixture fitted
to where the encoder actually puts the data (Ghosh et al. 2020, "From variational to
deterministic autoencoders", sec. 4: ex-post density estimation) often gives sharper
samples than the prior. Diagonal covariances, EM (Dempster, Laird & Rubin 1977).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vaekit.priors import mixture_sample


@dataclass
class GaussianMixture:
    """weights (K,), means (K, D), log-variances (K, D) of a diagonal Gaussian mixture."""

    weights: torch.Tensor
    means: torch.Tensor
    logvars: torch.Tensor

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return mixture_sample(self.means, self.logvars, n, generator, self.weights)


def _log_resp(x: torch.Tensor, mix: GaussianMixture) -> torch.Tensor:
    """log weight_k + log N(x_n; mean_k, var_k): (N, K)."""
    diff = x[:, None] - mix.means
    log_n = -0.5 * (math.log(2 * math.pi) + mix.logvars + diff.pow(2) * torch.exp(-mix.logvars))
    return mix.weights.log() + log_n.sum(-1)


def fit_gmm(
    x: torch.Tensor, components: int = 10, steps: int = 100, seed: int = 0, floor: float = 1e-4
) -> GaussianMixture:
    """EM on points x (N, D): means start at `components` distinct random points, the
    variances at the data's; `floor` keeps a component from collapsing onto one point."""
    x = x.double()
    generator = torch.Generator(device=x.device).manual_seed(seed)
    start = torch.randperm(x.shape[0], generator=generator, device=x.device)[:components]
    variance = x.var(0, correction=0).clamp_min(floor)
    mix = GaussianMixture(
        torch.full((components,), 1.0 / components, dtype=x.dtype, device=x.device),
        x[start].clone(),
        variance.log().expand(components, -1).clone(),
    )
    for _ in range(steps):
        resp = torch.softmax(_log_resp(x, mix), dim=1)  # E step: (N, K)
        total = resp.sum(0) + 1e-12  # M step
        means = resp.T @ x / total[:, None]
        second = resp.T @ x.pow(2) / total[:, None]
        var = (second - means.pow(2)).clamp_min(floor)
        mix = GaussianMixture(total / total.sum(), means, var.log())
    return mix
