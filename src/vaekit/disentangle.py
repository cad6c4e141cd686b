"""Disentangling objectives: beta-TCVAE and FactorVAE, as pure functions of tensors.

beta-TCVAE (Chen et al. 2018) splits the KL of a one-group Gaussian VAE into the
index-code mutual information, the total correlation of the aggregate posterior q(z)
and the dimension-wise KL to the prior, estimated from the batch by minibatch-weighted
sampling, and weights them alpha, beta, gamma. FactorVAE (Kim & Mnih 2018) keeps the
ELBO and adds gamma times a discriminator's estimate of the total correlation; the
discriminator tells samples of q(z) from samples with each dimension permuted across
the batch (a sample of prod_d q(z_d)), and is trained by its own Adam.

What an objective needs beside the model (the dataset size, the discriminator with its
optimiser) is its `Companion`: the training step asks it for the objective's keyword
options and lets it take its own step after the model's, and the checkpoint saves its
`state_dict`, so the loop knows nothing of either objective.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from vaekit.errors import ConfigError
from vaekit.likelihoods import LOG_2PI, at_least_fp32

if TYPE_CHECKING:
    from vaekit.config import ObjectiveConfig
    from vaekit.models.base import Latent, VAEOutput


def pairwise_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log q(z_i,d | x_j) for every pair of batch members: (M, M, D), i the sample."""
    z, mu, logvar = z[:, None, :], mu[None, :, :], logvar[None, :, :]
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar))


def tc_decomposition(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int
) -> dict[str, torch.Tensor]:
    """Index-code MI, total correlation and dimension-wise KL per example, (M,) each.

    Minibatch-weighted sampling (Chen et al. 2018's estimator): with M the batch and N
    the dataset, log q(z_i) ~ logsumexp_j log q(z_i | x_j) - log(N M), and likewise for
    each marginal q(z_i,d). The estimate of log q(z) is then the true one less log N when
    the batch is the whole dataset, so TC carries a constant (D - 1) log N, MI + log N and
    the dimension-wise KL - D log N: constants, no gradient. Their sum is the one-sample
    KL log q(z|x) - log p(z) exactly.
    """
    z, mu, logvar = (at_least_fp32(t) for t in (z, mu, logvar))
    m = z.shape[0]
    pairs = pairwise_log_density(z, mu, logvar)
    log_nm = math.log(dataset_size * m)
    log_qz = torch.logsumexp(pairs.sum(dim=2), dim=1) - log_nm
    log_qz_dims = (torch.logsumexp(pairs, dim=1) - log_nm).sum(dim=1)
    log_qz_x = torch.diagonal(pairs, dim1=0, dim2=1).sum(dim=0)
    log_pz = -0.5 * (LOG_2PI + z.pow(2)).sum(dim=1)
    return {
        "mi": log_qz_x - log_qz,
        "tc": log_qz - log_qz_dims,
        "dwkl": log_qz_dims - log_pz,
    }


def _one_gaussian_group(out: VAEOutput, objective: str) -> Latent:
    """The one latent group these objectives understand: diagonal Gaussian q, prior N(0, I)."""
    if len(out.latents) != 1:
        raise ConfigError(f"--objective {objective} needs a model with one latent group")
    (latent,) = out.latents
    if latent.log_q is not None or latent.log_p is not None or latent.p_mu is not None:
        raise ConfigError(f"--objective {objective} needs a Gaussian q(z|x) and the N(0, I) prior")
    return latent


def _recon_and_kl(
    x: torch.Tensor, out: VAEOutput, nll: Callable[..., torch.Tensor], latent: Latent
) -> tuple[torch.Tensor, torch.Tensor]:
    recon = nll(out.params, x, event_dims=3)
    q_mu, q_logvar = at_least_fp32(latent.q_mu), at_least_fp32(latent.q_logvar)
    kl = -0.5 * torch.sum(1 + q_logvar - q_mu.pow(2) - q_logvar.exp(), dim=-1)
    return recon, kl


def beta_tcvae_terms(
    x: torch.Tensor,
    out: VAEOutput,
    nll: Callable[..., torch.Tensor],
    kl_weight: float,
    free_bits: float,
    *,
    alpha: float = 1.0,
    gamma: float = 1.0,
    dataset_size: int = 1,
) -> dict[str, torch.Tensor]:
    """recon + alpha MI + beta TC + gamma dimension-wise KL, summed over the batch; beta
    is `kl_weight` (so the KL warm-up scales it). `loss` stays the -ELBO per example."""
    del free_bits  # refused by ObjectiveConfig for this objective
    latent = _one_gaussian_group(out, "beta-tcvae")
    recon, kl = _recon_and_kl(x, out, nll, latent)
    parts = tc_decomposition(latent.z, latent.q_mu, latent.q_logvar, dataset_size)
    penalty = alpha * parts["mi"] + kl_weight * parts["tc"] + gamma * parts["dwkl"]
    objective_value = (recon + penalty).sum()
    return {"objective": objective_value, "loss": recon + kl, "recon": recon, "kl": kl} | parts


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each latent dimension shuffled across the batch on its own: a sample of
    prod_d q(z_d) from one of q(z) (Kim & Mnih 2018, algorithm 2)."""
    m, d = z.shape
    keys = torch.rand((m, d), generator=generator, device=z.device)
    return torch.gather(z, 0, keys.argsort(dim=0))


def discriminator_tc(logits: torch.Tensor) -> torch.Tensor:
    """The density-ratio estimate of TC per example, log D(z) / (1 - D(z)), from the
    discriminator's two logits (class 0: a sample of q(z))."""
    return logits[:, 0] - logits[:, 1]


def discriminator_loss(real_logits: torch.Tensor, permuted_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of telling q(z) (class 0) from its permutation (class 1), averaged."""
    zeros = torch.zeros(real_logits.shape[0], dtype=torch.long, device=real_logits.device)
    real = nn.functional.cross_entropy(real_logits, zeros)
    permuted = nn.functional.cross_entropy(permuted_logits, torch.ones_like(zeros))
    return 0.5 * (real + permuted)


def factorvae_terms(
    x: torch.Tensor,
    out: VAEOutput,
    nll: Callable[..., torch.Tensor],
    kl_weight: float,
    free_bits: float,
    *,
    gamma: float = 1.0,
    discriminator: nn.Module | None = None,
) -> dict[str, torch.Tensor]:
    """recon + kl_weight KL + gamma TC (TC from the discriminator), summed over the batch."""
    del free_bits  # refused by ObjectiveConfig for this objective
    if discriminator is None:
        raise ConfigError("--objective factorvae needs its discriminator (the training step's)")
    latent = _one_gaussian_group(out, "factorvae")
    recon, kl = _recon_and_kl(x, out, nll, latent)
    tc = discriminator_tc(discriminator(at_least_fp32(latent.z)))
    objective_value = (recon + kl_weight * kl + gamma * tc).sum()
    return {"objective": objective_value, "loss": recon + kl, "recon": recon, "kl": kl, "tc": tc}


class Discriminator(nn.Module):
    """Kim & Mnih's discriminator: an MLP with leaky ReLUs, z -> two logits."""

    def __init__(self, latent_dim: int, hidden: int = 1000, layers: int = 6) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = latent_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        blocks.append(nn.Linear(width, 2))
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Companion:
    """What an objective carries beside the model: the keyword options of its terms, and
    optionally a module with its own optimiser that steps after the model does."""

    module: nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    terms: tuple[str, ...] = ()  # extra per-example terms the epoch's record averages

    def options(self) -> dict[str, Any]:
        return {}

    def after_step(self, out: VAEOutput) -> dict[str, torch.Tensor]:
        """Its own update from the batch's output (detached); its terms, summed."""
        return {}

    def state_dict(self) -> dict[str, Any] | None:
        if self.module is None or self.optimizer is None:
            return None
        return {"module": self.module.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.module is None or self.optimizer is None:
            return
        if state is None:
            raise ConfigError("the checkpoint has no discriminator state for this objective")
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])


@dataclass
class TCOptions(Companion):
    """beta-TCVAE's options: its weights and the dataset size of the estimator."""

    alpha: float
    gamma: float
    dataset_size: int
    terms: tuple[str, ...] = ("mi", "tc", "dwkl")

    def options(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "gamma": self.gamma, "dataset_size": self.dataset_size}


class DiscriminatorCompanion(Companion):
    """FactorVAE's discriminator and its Adam (Kim & Mnih: lr 1e-4, betas 0.5, 0.9)."""

    terms = ("tc", "disc_loss")

    def __init__(self, config: ObjectiveConfig, latent_dim: int, device: torch.device) -> None:
        self.gamma = config.gamma
        self.module = Discriminator(latent_dim, config.disc_hidden, config.disc_layers).to(device)
        self.optimizer = torch.optim.Adam(
            self.module.parameters(), lr=config.disc_lr, betas=(0.5, 0.9)
        )

    def options(self) -> dict[str, Any]:
        return {"gamma": self.gamma, "discriminator": self.module}

    def after_step(self, out: VAEOutput) -> dict[str, torch.Tensor]:
        """One discriminator step on the batch's z and its permutation (the same batch,
        detached), skipped when its loss is not finite."""
        z = at_least_fp32(out.latents[0].z.detach())
        assert self.module is not None and self.optimizer is not None
        loss = discriminator_loss(self.module(z), self.module(permute_dims(z)))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if bool(torch.isfinite(loss)):
            self.optimizer.step()
        return {"disc_loss": loss.detach() * z.shape[0]}


@dataclass(frozen=True)
class Objective:
    """A registered objective whose terms need a companion: called like the plain ones."""

    terms: Callable[..., dict[str, torch.Tensor]]
    companion: Callable[[ObjectiveConfig, int, int, torch.device], Companion]

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        return self.terms(*args, **kwargs)


def _tc_companion(
    config: ObjectiveConfig, latent_dim: int, dataset_size: int, device: torch.device
) -> Companion:
    del latent_dim, device
    return TCOptions(config.alpha, config.gamma, dataset_size)


def _discriminator_companion(
    config: ObjectiveConfig, latent_dim: int, dataset_size: int, device: torch.device
) -> Companion:
    del dataset_size
    return DiscriminatorCompanion(config, latent_dim, device)


BETA_TCVAE = Objective(beta_tcvae_terms, _tc_companion)
FACTORVAE = Objective(factorvae_terms, _discriminator_companion)
