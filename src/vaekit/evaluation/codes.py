"""Codebook statistics of a model with discrete codes, from a histogram of their use.

`estimate.elbo_sums` counts the codes each pass assigns (under the key `CODES`, beside
the scalar sums) for a model whose output has them; these turn that histogram into the
numbers the per-epoch record and `vaekit evaluate` report.
"""

from __future__ import annotations

import torch

from vaekit.codebook import perplexity, usage

CODES = "codes"  # the key of the code histogram among elbo_sums' sums


def code_metrics(counts: torch.Tensor | None) -> dict[str, float]:
    """{perplexity, code_usage, codebook_size} of a histogram; {} for a model without codes."""
    if counts is None:
        return {}
    return {
        "perplexity": perplexity(counts),
        "code_usage": usage(counts),
        "codebook_size": counts.numel(),
    }


def per_example(sums: dict[str, torch.Tensor], n: int) -> dict[str, float]:
    """elbo_sums' scalar sums as per-example averages over n, with the codebook's metrics."""
    scalars = {key: value.item() / n for key, value in sums.items() if key != CODES}
    return scalars | code_metrics(sums.get(CODES))
