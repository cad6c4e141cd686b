"""The MLP family's test-set -ELBO and importance-weighted log p(x), without the model's
generic forward pass: the same draws from the same generator, fewer passes over memory.

The per-epoch test loss is one call per batch into `vaekit.native`'s fused forward
(matrix products, ReLUs, the Bernoulli loss summed in the same pass). The k-sample
estimate runs the encoder once per image and scores each decoded sample as
-log p(x|z) = sum_j softplus(l_j) - x . l, where x . l = h3 (W4^T x) + b4 . x is a
matrix product per image block rather than a pass over the (samples, pixels) logits,
and the softplus sum is one fused C pass (logs of products of 64 terms). Without a
compiler the same arithmetic runs as PyTorch ops.

Eligible: an unconditional MLP (no prior, no flow) with the bernoulli likelihood,
fp32, on the CPU; `usable` says so and callers take the generic path otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from vaekit import native
from vaekit.objectives import gaussian_log_prob, standard_normal_log_prob

# Bytes per decoded sample and pixel on this path: the logits alone (fp32), plus slack.
BYTES_PER_PIXEL_SAMPLE = 5


def usable(model: torch.nn.Module, precision: str, device: torch.device) -> bool:
    """Whether `model` qualifies for this module's fast forward."""
    return (
        hasattr(model, "fast_layers")
        and not getattr(model, "classes", 0)
        and model.prior is None
        and model.flow is None
        and model.likelihood.name == "bernoulli"
        and precision == "fp32"
        and device.type == "cpu"
    )


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [t.detach() for layer in model.fast_layers() for t in (layer.weight, layer.bias)]


@torch.no_grad()
def elbo_sums(
    model: torch.nn.Module, images: torch.Tensor, batch_size: int, seed: int
) -> dict[str, torch.Tensor]:
    """Sums of loss, recon and kl over uint8 `images` (already under their protocol), with
    the noise `evaluation.estimate.elbo_sums` draws from the same seeded generator."""
    params = _params(model)
    D, H, L = params[0].shape[1], params[0].shape[0], params[2].shape[0]
    generator = torch.Generator().manual_seed(seed)
    rows = min(batch_size, images.shape[0])
    buf = {n: torch.empty(rows, w) for n, w in dict(x=D, h1=H, mu=L, lv=L, eps=L).items()}
    buf |= {n: torch.empty(rows, w) for n, w in dict(sd=L, z=L, h3=H, logits=D).items()}
    scratch = torch.empty(-(-rows // 64) * 2 * D)
    lib = native.load()
    order = ["x", "h1", "mu", "lv", "eps", "sd", "z", "h3", "logits"]
    slots = [*params, *params, *(buf[n] for n in order), *params[:5], scratch]
    pointers = native.pointers(slots)
    out = np.zeros(3, dtype=np.float64)
    out_p = out.ctypes.data_as(native.ctypes.POINTER(native.ctypes.c_double))
    flat = images.reshape(images.shape[0], -1)
    recon = kl = 0.0
    for start in range(0, images.shape[0], batch_size):
        n = min(batch_size, images.shape[0] - start)
        x = buf["x"][:n]
        x.copy_(flat[start : start + n]).div_(255)
        torch.randn((n, L), generator=generator, out=buf["eps"][:n])
        if lib is None:
            r, k = _torch_elbo(params, x, buf["eps"][:n])
        else:
            lib.vk_elbo(n, D, H, L, pointers, out_p)
            r, k = float(out[0]), float(out[1])
        recon, kl = recon + r, kl + k
    sums = {"loss": recon + kl, "recon": recon, "kl": kl}
    return {key: torch.tensor(value, dtype=torch.float32) for key, value in sums.items()}


def _torch_elbo(params: list[torch.Tensor], x: torch.Tensor, eps: torch.Tensor) -> tuple:
    W1, b1, Wm, bm, Wv, bv, W3, b3, W4, b4 = params
    h1 = torch.addmm(b1, x, W1.t()).relu_()
    mu, lv = torch.addmm(bm, h1, Wm.t()), torch.addmm(bv, h1, Wv.t())
    z = mu + eps * torch.exp(0.5 * lv)
    logits = torch.addmm(b4, torch.addmm(b3, z, W3.t()).relu_(), W4.t())
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = (-0.5 * (1 + lv - mu.pow(2) - lv.exp())).sum()
    return recon.item(), kl.item()


def rows_for(memory_mb: int, pixels: int) -> int:
    """Decoded samples that fit in `memory_mb` MiB on this path (logits only)."""
    return max(1, memory_mb * 2**20 // (BYTES_PER_PIXEL_SAMPLE * pixels))


@torch.no_grad()
def importance_weighted_log_px(
    model: torch.nn.Module,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator | None,
    max_rows: int,
) -> torch.Tensor:
    """`evaluation.estimate.importance_weighted_log_px` for float images x (B, ...): the
    same noise draws chunk by chunk ((B, n, L) per chunk from `generator`)."""
    W1, b1, Wm, bm, Wv, bv, W3, b3, W4, b4 = _params(model)
    batch, flat = x.shape[0], x.reshape(x.shape[0], -1).float()
    h1 = torch.addmm(b1, flat, W1.t()).relu_()
    mu, lv = torch.addmm(bm, h1, Wm.t())[:, None], torch.addmm(bv, h1, Wv.t())[:, None]
    sd = torch.exp(0.5 * lv)
    projected = (flat @ W4)[:, :, None]  # W4^T x per image: (B, H, 1)
    offset = (flat @ b4)[:, None]  # b4 . x: (B, 1)
    per_chunk = max(1, min(k, max_rows // batch))
    running = torch.full((batch,), -math.inf, dtype=torch.float64)
    logits = torch.empty(batch * per_chunk, W4.shape[0])
    softplus = torch.empty(batch * per_chunk, dtype=torch.float64)
    lib = native.load()
    for start in range(0, k, per_chunk):
        n = min(per_chunk, k - start)
        noise = torch.randn((batch, n, mu.shape[-1]), generator=generator)
        z = mu + noise * sd
        h3 = torch.addmm(b3, z.reshape(batch * n, -1), W3.t()).relu_()
        rows = logits[: batch * n]
        native.matmul_t(lib, h3, W4, rows)
        if lib is None:
            sp = F.softplus(rows + b4).sum(-1, dtype=torch.float64)
        else:
            sp = softplus[: batch * n]
            lib.vk_softplus_rows(rows.data_ptr(), b4.data_ptr(), batch * n, rows.shape[1],
                                 sp.data_ptr())  # fmt: skip
        x_dot_l = torch.bmm(h3.view(batch, n, -1), projected).squeeze(-1) + offset
        log_px_z = x_dot_l.double() - sp.view(batch, n)
        log_w = log_px_z + (standard_normal_log_prob(z) - gaussian_log_prob(z, mu, lv)).double()
        running = torch.logaddexp(running, torch.logsumexp(log_w, dim=1))
    return (running - math.log(k)).float()
