"""Test-set metrics: the per-epoch test loss, and the full evaluation of a model.

Every measurement uses its own seeded generator, so it repeats and leaves the
training RNG untouched. The full evaluation (`evaluate`) reports the negative
ELBO, the importance-weighted estimate of log p(x) (Burda, Grosse & Salakhutdinov
2015) with k samples per image, KL per latent dimension, the number of active
units and, when given a classifier, FID-MNIST (see `vaekit.fid`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import asdict

import torch
from tqdm import tqdm

from vaekit import fid
from vaekit.codebook import code_counts
from vaekit.config import EvalConfig
from vaekit.data import Split, evaluation_images, to_unit
from vaekit.evaluation import disentanglement, fast_mlp
from vaekit.evaluation.codes import CODES, per_example
from vaekit.evaluation.result import (
    FID,
    Disentanglement,
    EvalResult,
    LatentStats,
    Likelihood,
    NegElbo,
)
from vaekit.models import VAE
from vaekit.objectives import latent_kl_per_dim, log_weights, negative_elbo
from vaekit.runtime import autocast, inference

# Burda et al. (2015), section 5.2: unit u is active when Cov_x(E_q[z_u]) > 1e-2.
ACTIVE_THRESHOLD = 1e-2
# Bytes held per decoded sample and pixel: the logits, the broadcast target and the
# per-pixel loss (fp32 each), plus slack for the allocator.
_BYTES_PER_PIXEL_SAMPLE = 16


def elbo_sums(
    model: VAE,
    images: torch.Tensor,
    batch_size: int = 1000,
    seed: int = 0,
    precision: str = "fp32",
    binarize: str = "none",
    labels: torch.Tensor | None = None,
    fast: bool = True,
) -> dict[str, torch.Tensor]:
    """Sums over `images` (uint8, N x C x H x W) of loss, recon and kl, as device scalars,
    and for a model with discrete codes their histogram (key `codes.CODES`).

    Under dynamic binarisation the images are drawn once from `seed` (see
    `data.evaluation_images`), so the test loss of every epoch sees the same pixels.
    `fast`: an MLP that qualifies takes `evaluation.fast_mlp` (same noise, fused passes).
    """
    images = evaluation_images(images, binarize, seed)
    device = images.device
    if fast and images.dtype == torch.uint8 and fast_mlp.usable(model, precision, device):
        return fast_mlp.elbo_sums(model, images, batch_size, seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    sums = {k: torch.zeros((), device=device) for k in ("loss", "recon", "kl")}
    with inference(model), autocast(device, precision):
        for start in range(0, images.shape[0], batch_size):
            x = to_unit(images[start : start + batch_size])
            y = None if labels is None else labels[start : start + batch_size].to(device)
            out = model(x, generator, **model.condition(y))
            for key, value in negative_elbo(x, out, model.likelihood.nll).items():
                sums[key] += value.sum()
            if out.codes is not None:
                counts = code_counts(out.codes.indices, out.codes.size)
                sums[CODES] = sums[CODES] + counts if CODES in sums else counts
    return sums


def elbo(model: VAE, images: torch.Tensor, **kwargs) -> dict[str, float]:
    """Per-example averages of -ELBO and its two terms over `images` (and codebook metrics)."""
    return per_example(elbo_sums(model, images, **kwargs), images.shape[0])


# ----------------------------------------------------------- importance sampling


def rows_for(memory_mb: int, pixels: int) -> int:
    """Decoded samples that fit in `memory_mb` MiB: the bound on one chunk's size."""
    return max(1, memory_mb * 2**20 // (_BYTES_PER_PIXEL_SAMPLE * pixels))


def importance_weighted_log_px(
    model: VAE,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    max_rows: int = 4096,
    precision: str = "fp32",
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """The importance-weighted estimate of log p(x) for each image of x (B, ...) -> (B,).

    log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x) (Burda et al. 2015, eq. 8): the
    value of `objectives.importance_weighted_log_likelihood` over all k log weights,
    accumulated chunk by chunk with a running logsumexp so that at most `max_rows`
    samples (B x chunk) are decoded at once, whatever k is. Each chunk is one
    `model(x, k=n)` pass (the encoder once per image, the n samples decoded in one
    batch), scored by `objectives.log_weights` with the model's likelihood, so the
    estimate scores exactly what training optimised, for every architecture. With
    labels y (B,), a conditional model's estimate is of log p(x|y).
    """
    device = x.device
    batch = x.shape[0]
    per_chunk = max(1, min(k, max_rows // batch))
    running = torch.full((batch,), -math.inf, device=device, dtype=torch.float64)
    for start in range(0, k, per_chunk):
        n = min(per_chunk, k - start)
        with autocast(device, precision):
            out = model(x, generator, k=n, **model.condition(y))
        log_w = log_weights(x, out, model.likelihood.nll)
        running = torch.logaddexp(running, torch.logsumexp(log_w, dim=1).double())
    return (running - math.log(k)).to(torch.promote_types(x.dtype, torch.float32))


# ----------------------------------------------------------- latent statistics


def posterior_parameters(
    model: VAE,
    x: torch.Tensor,
    batch_size: int = 1000,
    precision: str = "fp32",
    labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """q(z|x)'s mean and log-variance for float images x, in fp32: (N, D) each; a
    conditional model's q(z|x, y) given `labels` (N,)."""
    mus, logvars = [], []
    for batch, condition in _encoder_batches(model, x, batch_size, precision, labels):
        mu, logvar = model.encode(batch, **condition)
        mus.append(mu.float())
        logvars.append(logvar.float())
    return torch.cat(mus), torch.cat(logvars)


def posterior_points(
    model: VAE,
    x: torch.Tensor,
    batch_size: int = 1000,
    precision: str = "fp32",
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """The codes the decoder reads at the centre of q(z|x) for float images x, (N, D) in
    fp32 (`VAE.posterior_point`: the mean, through the flow for a flow model): what is
    decoded, fitted (the GMM sampler) or drawn on the decoder's map."""
    batches = _encoder_batches(model, x, batch_size, precision, labels)
    return torch.cat([model.posterior_point(b, **c).float() for b, c in batches])


def _encoder_batches(
    model: VAE, x: torch.Tensor, batch_size: int, precision: str, labels: torch.Tensor | None
) -> Iterator[tuple[torch.Tensor, dict]]:
    """x in batches, each with its label condition, under inference and autocast."""
    with inference(model), autocast(x.device, precision):
        for start in range(0, x.shape[0], batch_size):
            y = None if labels is None else labels[start : start + batch_size].to(x.device)
            yield x[start : start + batch_size], model.condition(y)


def latent_statistics(
    model: VAE,
    x: torch.Tensor,
    batch_size: int = 1000,
    precision: str = "fp32",
    labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Posterior means of every latent group and KL per dimension, for float images x.

    One pass with zero noise: each group at its posterior mean given the groups above
    (for a one-group model, just q(z|x)'s mean; with a flow, that mean through the flow,
    z_T at eps = 0, the code the decoder reads: `posterior_points`). Returns the means
    (N, D_total), the KL of each dimension against its prior averaged over x (D_total,),
    and the group sizes.
    """
    flowed = getattr(model, "flow", None) is not None
    means, kls, sizes = [], [], []
    with inference(model), autocast(x.device, precision):
        for start in range(0, x.shape[0], batch_size):
            batch = x[start : start + batch_size]
            y = None if labels is None else labels[start : start + batch_size]
            zeros = torch.zeros_like(model.noise(batch.shape[0]))
            out = model(batch, noise=zeros, **model.condition(y))
            none = [batch.new_zeros(batch.shape[0], 0)]  # a model with discrete codes only
            centres = [(lat.z if flowed else lat.q_mu).float() for lat in out.latents]
            means.append(torch.cat(centres or none, dim=-1))
            kls.append(
                torch.cat([latent_kl_per_dim(lat).float() for lat in out.latents] or none, -1)
            )
            sizes = [latent.q_mu.shape[-1] for latent in out.latents]
    return torch.cat(means), torch.cat(kls).mean(dim=0), sizes


def active_units(mu: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> tuple[int, torch.Tensor]:
    """(number of active units, variance over x of E_q[z_u] for each u) from means (N, D).

    A unit the decoder ignores has a posterior that matches the prior for every x,
    so its mean does not move with x (Burda et al. 2015, section 5.2).
    """
    if mu.shape[1] == 0:  # no Gaussian latents (discrete codes only)
        return 0, mu.new_zeros(0, dtype=torch.float64)
    variance = mu.double().var(dim=0, correction=0)
    return int((variance > threshold).sum()), variance


# ----------------------------------------------------------- the whole evaluation


def bits_per_dim(nats: float, pixels: int) -> float:
    """Nats per image -> bits per pixel, the unit image-likelihood papers use alongside nats."""
    return nats / (pixels * math.log(2))


def evaluate(
    model: VAE,
    test: Split,
    config: EvalConfig,
    binarize: str,
    classifier: fid.Classifier | None = None,
    progress: bool = True,
    reference: torch.Tensor | None = None,
) -> EvalResult:
    """Score `model` on the uint8 split `test` under a binarisation protocol.

    With a `vaekit.fid` classifier, also the Fréchet distance between its features
    of as many generated images as test images and of `reference`: the grey-level
    test images (uint8), which the decoder's Bernoulli means estimate whatever the
    protocol; `test.images` when None. Nats per image unless a field says otherwise.
    """
    device = next(model.parameters()).device
    images = evaluation_images(test.images.to(device), binarize, config.seed)
    n, pixels = images.shape[0], math.prod(images.shape[1:])
    timing: dict[str, float] = {}
    started = time.perf_counter()
    labels = test.labels.to(device)
    sums = elbo_sums(model, images, config.batch_size, config.seed, config.precision, labels=labels)
    elbo_terms = per_example(sums, n)
    x = to_unit(images)
    mu, kl_per_dim, group_sizes = latent_statistics(
        model, x, config.batch_size, config.precision, labels
    )
    count, variance = active_units(mu)
    timing["elbo_seconds"] = time.perf_counter() - started

    mark = time.perf_counter()
    log_px = importance_weighted_estimates(model, x, config, progress, labels)
    timing["iwae_seconds"] = time.perf_counter() - mark
    nll = -log_px.double()
    grey = test.images if reference is None else reference
    fid_result = _fid(classifier, model, grey, config.seed, timing, progress)
    factors = _disentanglement(mu, test, config.seed, timing)
    timing["total_seconds"] = time.perf_counter() - started
    k = importance_samples(model, config.k)
    timing["images_x_k_per_second"] = n * k / timing["iwae_seconds"]
    result = EvalResult(
        images=n,
        pixels=pixels,
        binarize=binarize,
        neg_elbo=_neg_elbo(elbo_terms, pixels),
        iwae=_likelihood(nll, k, pixels),
        latent=_latent_stats(mu, kl_per_dim, group_sizes, count, variance),
        fid=fid_result,
        timing=timing,
        config=asdict(config),
        device=str(device),
        disentanglement=factors,
    )
    if CODES in sums:  # discrete codes: the codebook's use, the bound's terms in bits per dim
        result.extra["codes"] = _code_report(elbo_terms, pixels)
    return result


def _neg_elbo(terms: dict[str, float], pixels: int) -> NegElbo:
    return NegElbo(terms["loss"], bits_per_dim(terms["loss"], pixels), terms["recon"], terms["kl"])


def _code_report(terms: dict[str, float], pixels: int) -> dict[str, float]:
    """Codebook metrics, and -log p(x|z_q) and the codes' -log p(z) in bits per dimension:
    their sum is the -ELBO's bits per dimension (q is a point mass, so it bounds log p(x))."""
    names = ("perplexity", "code_usage", "codebook_size")
    return {name: terms[name] for name in names} | {
        "recon_bits_per_dim": bits_per_dim(terms["recon"], pixels),
        "prior_bits_per_dim": bits_per_dim(terms["kl"], pixels),
        "bits_per_dim": bits_per_dim(terms["loss"], pixels),
    }


def _disentanglement(
    mu: torch.Tensor, test: Split, seed: int, timing: dict[str, float]
) -> Disentanglement | None:
    """How disentangled the posterior means are, for data with factor labels."""
    if test.factors is None:
        return None
    mark = time.perf_counter()
    names = test.factor_names or [f"factor {i}" for i in range(test.factors.shape[1])]
    factors = test.factors.cpu().numpy()
    result = disentanglement.scores(mu.cpu().numpy(), factors, names, seed)
    timing["disentanglement_seconds"] = time.perf_counter() - mark
    return result


def _fid(
    classifier: fid.Classifier | None,
    model: VAE,
    grey: torch.Tensor,
    seed: int,
    timing: dict[str, float],
    progress: bool,
) -> FID | None:
    """FID of the model's samples against the grey test images, timed, when asked for."""
    if classifier is None:
        return None
    mark = time.perf_counter()
    result = FID(**fid.fid_report(classifier, model, to_unit(grey), seed, progress))
    timing["fid_seconds"] = time.perf_counter() - mark
    return result


def _likelihood(nll: torch.Tensor, k: int, pixels: int) -> Likelihood:
    """The mean -log p(x) per image, in nats and bits per dim, and its standard error."""
    n, mean = nll.shape[0], nll.mean().item()
    stderr = (nll.std() / math.sqrt(n)).item() if n > 1 else 0.0
    return Likelihood(k, mean, bits_per_dim(mean, pixels), stderr)


def _latent_stats(
    mu: torch.Tensor,
    kl_per_dim: torch.Tensor,
    group_sizes: list[int],
    count: int,
    variance: torch.Tensor,
) -> LatentStats:
    return LatentStats(
        dim=mu.shape[1],
        groups=group_sizes,
        kl_per_group=[part.sum().item() for part in kl_per_dim.split(group_sizes)],
        kl_per_dim=kl_per_dim.tolist(),
        mean_variance=variance.tolist(),
        active_units=count,
        active_threshold=ACTIVE_THRESHOLD,
    )


def importance_samples(model: VAE, k: int) -> int:
    """k, or 1 where q(z|x) is a point mass (discrete codes): every weight is then the same."""
    return k if model.gaussian_latents else 1


def importance_weighted_estimates(
    model: VAE,
    x: torch.Tensor,
    config: EvalConfig,
    progress: bool = True,
    labels: torch.Tensor | None = None,
    fast: bool = True,
) -> torch.Tensor:
    """log p(x) estimates (N,) for float images x, in batches, with a progress bar.
    An MLP that qualifies (and `fast`) takes `evaluation.fast_mlp`, whose chunks hold
    more samples in the same memory, so its figures differ in the last digits."""
    device = x.device
    generator = torch.Generator(device=device).manual_seed(config.seed)
    k = importance_samples(model, config.k)
    quick = fast and fast_mlp.usable(model, config.precision, device)
    estimate = fast_mlp.importance_weighted_log_px if quick else importance_weighted_log_px
    max_rows = (fast_mlp.rows_for if quick else rows_for)(config.memory_mb, math.prod(x.shape[1:]))
    batch_size = min(config.batch_size, max_rows)
    out = []
    bar = tqdm(
        total=x.shape[0],
        desc=f"log p(x), k={k}",
        unit="img",
        leave=False,
        disable=None if progress else True,
    )
    with bar, inference(model), torch.inference_mode():
        for start in range(0, x.shape[0], batch_size):
            batch = x[start : start + batch_size]
            y = None if labels is None else labels[start : start + batch_size]
            if quick:
                out.append(estimate(model, batch, k, generator, max_rows))
            else:
                out.append(estimate(model, batch, k, generator, max_rows, config.precision, y))
            bar.update(batch.shape[0])
            if not bar.disable:
                bar.set_postfix(nll=f"{-torch.cat(out).mean().item():.2f}")
    return torch.cat(out)
