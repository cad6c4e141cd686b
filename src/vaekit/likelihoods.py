"""Decoder likelihoods p(x|z): how the decoder's output tensor scores an image.

Every decoder emits `params_per_channel` maps per image channel, the first of
them logits; a likelihood turns them into -log p(x|z) (pure functions, summed
over the last `event_dims` dimensions) and into the image a person looks at
(`mean`, and `mean_ops`: the same map as operations the explorer page runs, see
`vaekit.models.export`). Chosen in the config (`--likelihood`, whose names
`vaekit.config.registry` declares), registered by name here.

- bernoulli: the seed's, pixels as probabilities of "on"; takes grey levels as
  soft targets, as the seed does (not a normalised density for them).
- gaussian: N(x; sigmoid(logits), sigma^2), sigma fixed by `--sigma`.
- gaussian-learned: the decoder also emits a per-pixel log-variance, kept at or
  above log sigma^2 (`--sigma` is then the floor: without one, constant pixels
  such as MNIST's background drive the variance, and the density, without bound).
- continuous-bernoulli: Loaiza-Ganem & Cunningham (2019), the Bernoulli made a
  proper density on [0, 1] by its normalising constant C(lambda).
- mixed: for tables and vectors (shape (1, 1, D)), laid out by a `TableLayout`:
  numeric columns (standardised) under N(mean, exp(logvar)) with a learned variance
  floored at sigma^2, then each categorical column's one-hot block under a softmax.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from vaekit.config.registry import LIKELIHOOD
from vaekit.errors import ConfigError

LOG_2PI = math.log(2 * math.pi)
# Below these |logit|s the continuous Bernoulli's log C and mean use their Taylor series:
# the closed forms divide 0 by 0 at lambda = 1/2 (and the mean's loses digits before).
_CB_TAYLOR = 1e-2
_CB_MEAN_SERIES = 0.5


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """Losses are summed over hundreds of pixels: do that in fp32 even under autocast."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _sum_event(t: torch.Tensor, event_dims: int) -> torch.Tensor:
    return t.flatten(-event_dims).sum(dim=-1)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor, event_dims: int = 3) -> torch.Tensor:
    """-log p(x|z) for a Bernoulli decoder: binary cross-entropy summed over pixels.

    Computed from logits (log-sum-exp form), which stays finite where the seed's
    sigmoid-then-BCE saturates. x may be grey levels in [0, 1], as in the seed.
    x broadcasts against the logits, so k decoded samples (B, k, C, H, W) score one
    image (B, 1, C, H, W).
    """
    logits = at_least_fp32(logits)
    target = x.to(logits.dtype).expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return _sum_event(bce, event_dims)


def continuous_bernoulli_log_norm(logits: torch.Tensor) -> torch.Tensor:
    """log C(lambda) for lambda = sigmoid(logits), elementwise.

    C(lambda) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda), which in logits l is
    l / tanh(l / 2) (Loaiza-Ganem & Cunningham 2019, eq. 7). log |tanh(|l|/2)| is
    written with log1p so it stays exact for large |l|; near l = 0 the series
    log 2 + l^2/12 - 7 l^4/1440 replaces the 0/0.
    """
    logits = at_least_fp32(logits)
    a = logits.abs()
    safe = torch.where(a < _CB_TAYLOR, torch.ones_like(a), a)
    e = torch.exp(-safe)
    closed = torch.log(safe) - (torch.log1p(-e) - torch.log1p(e))
    series = math.log(2.0) + a.pow(2) / 12 - 7 * a.pow(4) / 1440
    return torch.where(a < _CB_TAYLOR, series, closed)


def continuous_bernoulli_nll(
    logits: torch.Tensor, x: torch.Tensor, event_dims: int = 3
) -> torch.Tensor:
    """-log CB(x; lambda) = BCE(logits, x) - log C(lambda), summed over pixels."""
    log_norm = _sum_event(continuous_bernoulli_log_norm(logits), event_dims)
    return bernoulli_nll(logits, x, event_dims) - log_norm


def continuous_bernoulli_mean(logits: torch.Tensor) -> torch.Tensor:
    """E[x] under CB(lambda): lambda / (2 lambda - 1) + 1 / (2 artanh(1 - 2 lambda)).

    In logits: 1/2 + 1/(2 tanh(l/2)) - 1/l. The last two terms cancel for small |l|, so
    there the series 1/2 + l/12 - l^3/720 + l^5/30240 (error below 1e-8 for |l| < 1/2)
    replaces them. Not lambda itself, which is why pictures of a CB decoder use this.
    """
    logits = at_least_fp32(logits)
    small = logits.abs() < _CB_MEAN_SERIES
    safe = torch.where(small, torch.ones_like(logits), logits)
    closed = 0.5 + 0.5 / torch.tanh(safe / 2) - 1 / safe
    series = 0.5 + logits / 12 - logits.pow(3) / 720 + logits.pow(5) / 30240
    return torch.where(small, series, closed)


def gaussian_nll(
    mean_logits: torch.Tensor,
    x: torch.Tensor,
    logvar: torch.Tensor | float,
    event_dims: int = 3,
) -> torch.Tensor:
    """-log N(x; sigmoid(mean_logits), exp(logvar)) summed over pixels."""
    mean = torch.sigmoid(at_least_fp32(mean_logits))
    logvar = torch.as_tensor(logvar, dtype=mean.dtype, device=mean.device)
    nll = 0.5 * (LOG_2PI + logvar + (x.to(mean.dtype) - mean).pow(2) * torch.exp(-logvar))
    return _sum_event(nll.expand(torch.broadcast_shapes(nll.shape, mean.shape)), event_dims)


def learned_logvar(raw: torch.Tensor, sigma_floor: float) -> torch.Tensor:
    """Per-pixel log-variance from the decoder's second map, never below log floor^2.

    softplus keeps a gradient everywhere, unlike a hard clamp.
    """
    return 2 * math.log(sigma_floor) + F.softplus(at_least_fp32(raw))


class TableLayout(NamedTuple):
    """Where a table's columns sit in its encoded vector (the last dimension): the
    numeric columns first, one standardised value each, then each categorical
    column's one-hot block, of its number of categories."""

    numeric: int
    categories: tuple[int, ...] = ()

    @property
    def width(self) -> int:
        return self.numeric + sum(self.categories)


def categorical_nll(
    logits: torch.Tensor, x: torch.Tensor, sizes: tuple[int, ...], start: int = 0
) -> torch.Tensor:
    """-log p(x) of one-hot blocks under a softmax over each block's logits, summed over
    the blocks: `sizes` are the blocks' widths along the last dimension from `start`.
    x broadcasts against the logits (k samples score one example)."""
    logits = at_least_fp32(logits)
    total = torch.zeros((), dtype=logits.dtype, device=logits.device)
    for size in sizes:
        block = slice(start, start + size)
        log_p = torch.log_softmax(logits[..., block], dim=-1)
        total = total - (x[..., block].to(log_p.dtype) * log_p).sum(dim=-1)
        start += size
    return total


def _mixed_nll(
    params: torch.Tensor,
    x: torch.Tensor,
    event_dims: int = 3,
    *,
    sigma: float,
    layout: TableLayout,
) -> torch.Tensor:
    """Gaussian (learned variance, floor sigma) on the numeric block, categorical on the
    one-hot blocks; summed over the vector and the other event dimensions."""
    mean, raw = _split(params)
    mean, n = at_least_fp32(mean), layout.numeric
    target = x.to(mean.dtype)
    total = categorical_nll(mean, target, layout.categories, start=n)
    if n:
        logvar = learned_logvar(raw[..., :n], sigma)
        error = (target[..., :n] - mean[..., :n]).pow(2) * torch.exp(-logvar)
        total = total + 0.5 * (LOG_2PI + logvar + error).sum(dim=-1)
    return total.flatten(-(event_dims - 1)).sum(dim=-1) if event_dims > 1 else total


def _mixed_mean(params: torch.Tensor, layout: TableLayout) -> torch.Tensor:
    """The numeric means (standardised units) and each categorical block's probabilities."""
    mean = at_least_fp32(_split(params)[0])
    blocks, start = [mean[..., : layout.numeric]], layout.numeric
    for size in layout.categories:
        blocks.append(torch.softmax(mean[..., start : start + size], dim=-1))
        start += size
    return torch.cat(blocks, dim=-1)


def _mixed_sample(
    params: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    sigma: float,
    layout: TableLayout,
) -> torch.Tensor:
    """One draw x ~ p(x|z) per decoder output: numeric values, one-hot categories."""
    mean, raw = (at_least_fp32(t) for t in _split(params))
    n = layout.numeric
    noise = torch.randn(mean[..., :n].shape, generator=generator, device=mean.device)
    blocks = [mean[..., :n] + noise * torch.exp(0.5 * learned_logvar(raw[..., :n], sigma))]
    start = n
    for size in layout.categories:
        probs = torch.softmax(mean[..., start : start + size], dim=-1)
        flat = probs.reshape(-1, size)
        drawn = torch.multinomial(flat, 1, generator=generator).squeeze(-1)
        blocks.append(F.one_hot(drawn, size).to(mean.dtype).reshape(probs.shape))
        start += size
    return torch.cat(blocks, dim=-1)


def _mixed(sigma: float, layout: TableLayout | None = None) -> Likelihood:
    if layout is None:
        raise ConfigError(
            "--likelihood mixed is for tables and vectors (csv:PATH, or npy:PATH of shape N x D)"
        )
    layout = TableLayout(int(layout[0]), tuple(int(k) for k in layout[1]))
    return Likelihood(
        "mixed",
        2,
        partial(_mixed_nll, sigma=sigma, layout=layout),
        partial(_mixed_mean, layout=layout),
        True,
        sample=partial(_mixed_sample, sigma=sigma, layout=layout),
        layout=layout,
    )


@dataclass(frozen=True)
class Likelihood:
    """A likelihood bound to its settings: `nll(params, x, event_dims)`, `mean(params)`.

    `mean_ops` is `mean` for one decoder output (P*C, H, W) written as explorer
    operations, so the page shows what `vaekit.decode` returns; () where not described.
    `layout` is set for the likelihoods of tables (data of shape (1, 1, D)), whose
    `sample(params, generator)` draws x ~ p(x|z) in the encoded (standardised) space.
    """

    name: str
    params_per_channel: int
    nll: Callable[..., torch.Tensor]
    mean: Callable[[torch.Tensor], torch.Tensor]
    # A density for real-valued pixels (on [0, 1]^D for the continuous Bernoulli, on R^D
    # for the Gaussians): its NLL is in nats of a density, not comparable with Bernoulli's.
    continuous: bool
    mean_ops: tuple[dict[str, Any], ...] = ()
    sample: Callable[..., torch.Tensor] | None = None
    layout: TableLayout | None = None


def _split(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two maps per channel of a two-parameter decoder, along the channel dimension."""
    return params.chunk(2, dim=-3)


def _gaussian_learned_nll(
    params: torch.Tensor, x: torch.Tensor, event_dims: int = 3, sigma: float = 0.1
) -> torch.Tensor:
    mean_logits, raw = _split(params)
    return gaussian_nll(mean_logits, x, learned_logvar(raw, sigma), event_dims)


def _first_map_mean(params: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(at_least_fp32(_split(params)[0]))


def _sigmoid_mean(params: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(at_least_fp32(params))


_SIGMOID_OPS = ({"op": "sigmoid"},)


def _gaussian_fixed(sigma: float, layout: TableLayout | None = None) -> Likelihood:
    logvar = 2 * math.log(sigma)

    def nll(params: torch.Tensor, x: torch.Tensor, event_dims: int = 3) -> torch.Tensor:
        return gaussian_nll(params, x, logvar, event_dims)

    return Likelihood("gaussian", 1, nll, _sigmoid_mean, True, _SIGMOID_OPS)


# name -> factory(sigma, layout): the names are declared in vaekit.config.registry, which
# refuses others; `layout` (a TableLayout) is given for tables, and only mixed reads it.
for _name, _factory in {
    "bernoulli": lambda _, layout=None: Likelihood(
        "bernoulli", 1, bernoulli_nll, _sigmoid_mean, False, _SIGMOID_OPS
    ),
    "gaussian": _gaussian_fixed,
    "gaussian-learned": lambda sigma, layout=None: Likelihood(
        "gaussian-learned",
        2,
        partial(_gaussian_learned_nll, sigma=sigma),
        _first_map_mean,
        True,
        ({"op": "chunk", "chunks": 2, "index": 0}, *_SIGMOID_OPS),  # as _split, then sigmoid
    ),
    "continuous-bernoulli": lambda _, layout=None: Likelihood(
        "continuous-bernoulli",
        1,
        continuous_bernoulli_nll,
        continuous_bernoulli_mean,
        True,
        ({"op": "continuous_bernoulli_mean"},),
    ),
    "mixed": _mixed,
}.items():
    LIKELIHOOD.register(_name, _factory)
LIKELIHOODS: Mapping[str, Callable[..., Likelihood]] = LIKELIHOOD.implementations
# The likelihoods for tables and vectors, which need a TableLayout.
TABLE_LIKELIHOODS = ("mixed",)


def get_likelihood(
    name: str, sigma: float = 0.1, layout: TableLayout | tuple | None = None
) -> Likelihood:
    """The likelihood called `name`, with `sigma` (fixed sigma, or floor) bound in; for a
    table's data, `layout` says where its numeric and categorical columns sit."""
    if name not in LIKELIHOODS:
        raise ValueError(LIKELIHOOD.unknown(name))
    if layout is not None and name not in TABLE_LIKELIHOODS:
        raise ConfigError(
            f"tables and vectors need --likelihood mixed (Gaussian for numeric columns, "
            f"categorical for the rest); {name} is for images"
        )
    return LIKELIHOODS[name](sigma, layout)
