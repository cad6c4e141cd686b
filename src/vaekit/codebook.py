"""Vector quantisation as pure functions of tensors (van den Oord et al. 2017).

Nearest-code assignment, the exponential-moving-average codebook update (the paper's
appendix A.1), dead-code restarts, and the usage statistics reported per epoch. The
module holding the codebook's buffers is `vaekit.models.vq`; these take and return
tensors only, so tests check them against hand computations.
"""

from __future__ import annotations

import math

import torch


def nearest_codes(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest code (Euclidean) for each row of z (N, D); codebook (K, D).

    ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2; the ||z||^2 term is the same for every
    code, so it is left out of the argmin."""
    z, codebook = z.float(), codebook.float()
    distances = codebook.pow(2).sum(dim=1) - 2 * z @ codebook.t()
    return distances.argmin(dim=1)


def code_counts(indices: torch.Tensor, size: int) -> torch.Tensor:
    """How often each of `size` codes occurs in `indices` (any shape), as float (K,)."""
    return torch.bincount(indices.reshape(-1), minlength=size).float()


def ema_update(
    cluster_size: torch.Tensor,
    code_sum: torch.Tensor,
    z: torch.Tensor,
    indices: torch.Tensor,
    decay: float,
    epsilon: float = 1e-5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One EMA step: N_i <- g N_i + (1-g) n_i, m_i <- g m_i + (1-g) sum_{z -> i} z, and the
    codebook e_i = m_i / N~_i with N~ the Laplace-smoothed counts (so a code nobody picked
    is not divided by zero). z (N, D), indices (N,). Returns (N, m, codebook)."""
    size = cluster_size.shape[0]
    onehot = torch.nn.functional.one_hot(indices, size).to(z.dtype)
    cluster_size = decay * cluster_size + (1 - decay) * onehot.sum(dim=0)
    code_sum = decay * code_sum + (1 - decay) * onehot.t() @ z
    total = cluster_size.sum()
    smoothed = (cluster_size + epsilon) / (total + size * epsilon) * total
    return cluster_size, code_sum, code_sum / smoothed[:, None]


def restart_dead_codes(
    cluster_size: torch.Tensor,
    code_sum: torch.Tensor,
    codebook: torch.Tensor,
    z: torch.Tensor,
    threshold: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Codes whose EMA count N_i fell below `threshold` move to encoder outputs drawn from z
    (N, D) at random (as Dhariwal et al. 2020 restart them), with N_i = 1 and m_i = e_i, so
    they compete again. Returns (N, m, codebook, number restarted)."""
    dead = cluster_size < threshold
    count = int(dead.sum())
    if count == 0:
        return cluster_size, code_sum, codebook, 0
    picks = torch.randint(z.shape[0], (count,), generator=generator, device=z.device)
    codebook, code_sum, cluster_size = codebook.clone(), code_sum.clone(), cluster_size.clone()
    codebook[dead] = z[picks].to(codebook.dtype)
    code_sum[dead] = codebook[dead]
    cluster_size[dead] = 1.0
    return cluster_size, code_sum, codebook, count


def perplexity(counts: torch.Tensor) -> float:
    """exp(entropy) of the code histogram: K when every code is used equally, 1 for one code."""
    p = counts.double() / counts.sum().clamp(min=1)
    entropy = -(p * torch.log(p.clamp(min=1e-300))).sum()
    return float(torch.exp(entropy))


def usage(counts: torch.Tensor) -> float:
    """The fraction of the codebook used at least once."""
    return float((counts > 0).double().mean())


def uniform_code_nll(positions: int, size: int) -> float:
    """-log p(codes) under the uniform prior over `size` codes at each of `positions`."""
    return positions * math.log(size)
