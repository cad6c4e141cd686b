"""Losses and estimators as pure functions of tensors, one value per example.

Shapes: x (B, C, H, W); a model's output (`models.VAEOutput`) holds the decoder's
parameters (B, P*C, H, W) and, per latent group, the sample z and the parameters
of q and p, each (B, D_g). With k samples per example a dimension follows the
batch, (B, k, ...), and x broadcasts against it as (B, 1, ...). Everything
returns (B,) or (B, k), so training can sum and evaluation keep per-example values;
`training_terms` alone also returns the scalar that the optimiser minimises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from vaekit.codebook import uniform_code_nll
from vaekit.config.registry import OBJECTIVE
from vaekit.disentangle import BETA_TCVAE, FACTORVAE, Companion
from vaekit.likelihoods import LOG_2PI, at_least_fp32, bernoulli_nll

if TYPE_CHECKING:
    from vaekit.config import ObjectiveConfig
    from vaekit.models.base import Codes, Latent, VAEOutput

__all__ = ["LOG_2PI", "bernoulli_nll"]  # bernoulli_nll re-exported: the seed's loss lives here too

NLL = Callable[..., torch.Tensor]  # nll(params, x, event_dims) -> (...), see vaekit.likelihoods


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over latent dimensions.

    Closed form from Kingma & Welling (2014), appendix B:
    -1/2 * sum(1 + log sigma^2 - mu^2 - sigma^2).
    """
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)


def gaussian_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The same KL, kept per latent dimension: (B, D)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def gaussian_kl_between_per_dim(
    q_mu: torch.Tensor, q_logvar: torch.Tensor, p_mu: torch.Tensor, p_logvar: torch.Tensor
) -> torch.Tensor:
    """KL(N(q_mu, e^q_logvar) || N(p_mu, e^p_logvar)) per dimension, elementwise."""
    ratio = torch.exp(q_logvar - p_logvar)
    return 0.5 * (ratio + (q_mu - p_mu).pow(2) * torch.exp(-p_logvar) - 1 - (q_logvar - p_logvar))


def gaussian_kl_between(
    q_mu: torch.Tensor, q_logvar: torch.Tensor, p_mu: torch.Tensor, p_logvar: torch.Tensor
) -> torch.Tensor:
    """KL(N(q_mu, e^q_logvar) || N(p_mu, e^p_logvar)), diagonal, summed over the last dimension."""
    return gaussian_kl_between_per_dim(q_mu, q_logvar, p_mu, p_logvar).sum(dim=-1)


def gaussian_log_prob(
    x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, event_dims: int = 1
) -> torch.Tensor:
    """log N(x; mean, diag(exp(logvar))), summed over the last `event_dims` dimensions.

    Serves q(z|x) and p(z) in the importance weights and any Gaussian decoder
    p(x|z); arguments broadcast against each other.
    """
    x, mean, logvar = (at_least_fp32(t) for t in (x, mean, logvar))
    log_density = -0.5 * (LOG_2PI + logvar + (x - mean).pow(2) * torch.exp(-logvar))
    return log_density.flatten(-event_dims).sum(dim=-1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), the prior p(z), summed over the last (latent) dimension."""
    z = at_least_fp32(z)
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
    return torch.logsumexp(at_least_fp32(log_weights), dim=dim) - math.log(k)


# ----------------------------------------------------------- over a model's output


def _prior(latent: Latent) -> tuple[torch.Tensor, torch.Tensor] | None:
    return None if latent.p_mu is None else (latent.p_mu, latent.p_logvar)


def latent_log_ratio(latent: Latent) -> torch.Tensor:
    """log p(z) - log q(z) at the group's sample: its share of the log importance weight."""
    z, q_mu, q_logvar = (at_least_fp32(t) for t in (latent.z, latent.q_mu, latent.q_logvar))
    prior = _prior(latent)
    if latent.log_p is not None:
        log_p = at_least_fp32(latent.log_p)
    elif prior is None:
        log_p = standard_normal_log_prob(z)
    else:
        log_p = gaussian_log_prob(z, *(at_least_fp32(t) for t in prior))
    if latent.log_q is not None:
        return log_p - at_least_fp32(latent.log_q)
    return log_p - gaussian_log_prob(z, q_mu, q_logvar)


def latent_kl_per_dim(latent: Latent) -> torch.Tensor:
    """KL(q || p) of one group per dimension, in closed form given the sampled parents.

    A group scored by its own log densities (a flow, a mixture prior) has no split by
    dimension: its one-sample estimate is shared evenly among the dimensions."""
    if latent.log_p is not None or latent.log_q is not None:
        per_example = -latent_log_ratio(latent)
        return (per_example / latent.z.shape[-1]).unsqueeze(-1).expand(latent.z.shape)
    q_mu, q_logvar = at_least_fp32(latent.q_mu), at_least_fp32(latent.q_logvar)
    prior = _prior(latent)
    if prior is None:
        return gaussian_kl_per_dim(q_mu, q_logvar)
    return gaussian_kl_between_per_dim(q_mu, q_logvar, *(at_least_fp32(t) for t in prior))


def latent_kl(latent: Latent) -> torch.Tensor:
    """KL(q || p) of one latent group: in closed form where the model allows it, else the
    one-sample estimate log q(z) - log p(z) (a group whose prior depends on a later sample)."""
    if not latent.analytic_kl:
        return -latent_log_ratio(latent)
    q_mu, q_logvar = at_least_fp32(latent.q_mu), at_least_fp32(latent.q_logvar)
    prior = _prior(latent)
    if prior is None:
        return gaussian_kl(q_mu, q_logvar)
    return gaussian_kl_between(q_mu, q_logvar, *(at_least_fp32(t) for t in prior))


def _target(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) aligned with decoder parameters that may carry a sample dimension."""
    return x.unsqueeze(1) if params.dim() == x.dim() + 1 else x


def reconstruction_nll(x: torch.Tensor, out: VAEOutput, nll: NLL = bernoulli_nll) -> torch.Tensor:
    """-log p(x|z) at the output's sample(s): (B,) or (B, k)."""
    return nll(out.params, _target(x, out.params), event_dims=3)


def code_kl(codes: Codes) -> torch.Tensor:
    """KL(q || p) of a grid of discrete codes, (B,): q is a point mass on the assigned codes,
    so it is -log p(codes), the prior's cross-entropy summed over positions; under the
    uniform prior that is positions * log K (van den Oord et al. 2017, section 3.1)."""
    batch = codes.indices.shape[0]
    if codes.prior_logits is None:
        nats = uniform_code_nll(codes.indices[0].numel(), codes.size)
        return torch.full((batch,), nats, device=codes.indices.device)
    logits = at_least_fp32(codes.prior_logits)
    nll = torch.nn.functional.cross_entropy(logits, codes.indices, reduction="none")
    return nll.reshape(batch, -1).sum(dim=1)


def commitment_loss(codes: Codes) -> torch.Tensor:
    """||z_e - sg(e)||^2 per example (B,): pulls the encoder towards its codes (eq. 3)."""
    diff = at_least_fp32(codes.z_e) - at_least_fp32(codes.z_q).detach()
    return diff.pow(2).reshape(diff.shape[0], -1).sum(dim=1)


def total_kl(out: VAEOutput) -> torch.Tensor:
    """Sum over Gaussian groups of KL(q || p), plus the discrete codes' where there are some."""
    kl = sum(latent_kl(latent) for latent in out.latents)
    return kl + code_kl(out.codes) if out.codes is not None else kl


def negative_elbo(
    x: torch.Tensor, out: VAEOutput, nll: NLL = bernoulli_nll
) -> dict[str, torch.Tensor]:
    """-ELBO = reconstruction (-log p(x|z)) + sum over groups of KL(q || p), per example."""
    recon = reconstruction_nll(x, out, nll)
    kl = total_kl(out)
    return {"loss": recon + kl, "recon": recon, "kl": kl}


def log_weights(x: torch.Tensor, out: VAEOutput, nll: NLL = bernoulli_nll) -> torch.Tensor:
    """log p(x, z) - log q(z|x) for each of the output's samples: (B, k)."""
    log_ratio = sum(latent_log_ratio(latent) for latent in out.latents)
    if out.codes is not None:  # a point-mass q: log p(codes) - log 1, the same for each sample
        log_ratio = log_ratio - code_kl(out.codes)[:, None]
    return log_importance_weights(-reconstruction_nll(x, out, nll), log_ratio, 0.0)


def free_bits_kl(group_kls: list[torch.Tensor], free_bits: float) -> torch.Tensor:
    """Sum over groups of max(lambda, batch-mean KL), times the batch size.

    Kingma et al. (2016), eq. 15: a group whose average KL is below lambda nats
    gets no gradient pushing it further towards the prior, which keeps latent
    units from collapsing early in training.
    """
    batch = group_kls[0].shape[0]
    floored = [torch.clamp(kl.mean(), min=free_bits) for kl in group_kls]
    return batch * torch.stack(floored).sum()


def training_terms(
    x: torch.Tensor,
    out: VAEOutput,
    nll: NLL = bernoulli_nll,
    objective: str = "elbo",
    kl_weight: float = 1.0,
    free_bits: float = 0.0,
    **options: Any,
) -> dict[str, torch.Tensor]:
    """The batch's objective (a scalar to minimise) and its per-example terms.

    `objective` names one of `OBJECTIVES` (declared in vaekit.config.registry);
    `options` are what its `companion` hands it (beta-TCVAE's weights, FactorVAE's
    discriminator). `loss` is always the unweighted bound per example (-ELBO, or -L_k).
    """
    return OBJECTIVE.get(objective)(x, out, nll, kl_weight, free_bits, **options)


def companion(
    config: ObjectiveConfig, latent_dim: int, dataset_size: int, device: torch.device
) -> Companion | None:
    """What the run's objective carries beside the model (`disentangle.Companion`), or None
    for the objectives that need nothing more than the model's output."""
    build = getattr(OBJECTIVE.get(config.objective), "companion", None)
    return None if build is None else build(config, latent_dim, dataset_size, device)


def elbo_terms(
    x: torch.Tensor, out: VAEOutput, nll: NLL, kl_weight: float, free_bits: float, **_: Any
) -> dict[str, torch.Tensor]:
    """recon + kl_weight * KL, summed over the batch (the seed's loss when kl_weight = 1
    and free_bits = 0; kl_weight carries beta and KL warm-up); free bits replace each
    group's KL by max(lambda, its batch mean)."""
    recon = reconstruction_nll(x, out, nll)
    group_kls = [latent_kl(latent) for latent in out.latents]
    kl = sum(group_kls)
    penalty = free_bits_kl(group_kls, free_bits) if free_bits > 0 else kl.sum()
    if kl_weight != 1.0:
        penalty = kl_weight * penalty
    objective_value = recon.sum() + penalty
    return {"objective": objective_value, "loss": recon + kl, "recon": recon, "kl": kl}


def iwae_terms(
    x: torch.Tensor, out: VAEOutput, nll: NLL, kl_weight: float, free_bits: float, **_: Any
) -> dict[str, torch.Tensor]:
    """-log (1/k) sum_i w_i over the output's k samples per example (Burda et al. 2015,
    eq. 8), summed over the batch; recon and kl are then means over the k samples.
    Config refuses a KL weight or free bits with it, so both are unused here."""
    bound = importance_weighted_log_likelihood(log_weights(x, out, nll), dim=1)
    recon = reconstruction_nll(x, out, nll).mean(dim=1)
    kl = -sum(latent_log_ratio(latent) for latent in out.latents).mean(dim=1)
    return {"objective": -bound.sum(), "loss": -bound, "recon": recon, "kl": kl}


def vq_terms(
    x: torch.Tensor, out: VAEOutput, nll: NLL, kl_weight: float, free_bits: float
) -> dict[str, torch.Tensor]:
    """-log p(x|z_q) + beta ||z_e - sg(e)||^2 + KL (van den Oord et al. 2017, eq. 3 without
    the codebook term, which moving averages replace), summed over the batch. The KL is the
    codes' -log p(codes): a constant under the uniform prior of the first stage, the learned
    prior's cross-entropy in the second, where nothing else has a gradient. `loss` is the
    -ELBO, recon + KL. The KL weight and free bits (Gaussian options) are not used."""
    codes = out.codes
    if codes is None:
        raise ValueError("the vq objective scores a model with discrete codes (VAEOutput.codes)")
    recon = reconstruction_nll(x, out, nll)
    kl = code_kl(codes)
    objective_value = (recon + kl).sum() + codes.commitment * commitment_loss(codes).sum()
    return {"objective": objective_value, "loss": recon + kl, "recon": recon, "kl": kl}


OBJECTIVE.register("elbo", elbo_terms)
OBJECTIVE.register("iwae", iwae_terms)
OBJECTIVE.register("beta-tcvae", BETA_TCVAE)
OBJECTIVE.register("factorvae", FACTORVAE)
OBJECTIVE.register("vq", vq_terms)
OBJECTIVES: Mapping[str, Callable[..., dict[str, torch.Tensor]]] = OBJECTIVE.implementations
