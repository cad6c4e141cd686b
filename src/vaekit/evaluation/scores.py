"""`vaekit score`: per-example scores for anomaly detection.

For each example: -log p(x), importance-weighted with k samples (the estimator of
`evaluation.estimate`, same seed, batches and memory bound as `vaekit evaluate`, so
the same numbers), the one-sample -ELBO with its two terms (drawn as the per-epoch
test loss draws them), and the squared error of the reconstruction at the posterior
mean. A high -log p(x) is an example the model finds unlikely: an anomaly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vaekit import pictures
from vaekit.config import EvalConfig
from vaekit.data import Split, evaluation_images, to_unit
from vaekit.evaluation.encoded import label_names
from vaekit.evaluation.estimate import importance_weighted_estimates
from vaekit.files import write_csv
from vaekit.models import VAE
from vaekit.objectives import negative_elbo
from vaekit.runtime import autocast, inference


@dataclass
class Scores:
    """Per-example scores in nats, (N,) float32 each (the precision they are computed
    in); `labels` as text where the data has them, `rows` a table's file rows."""

    neg_log_px: np.ndarray
    neg_elbo: np.ndarray
    recon: np.ndarray
    kl: np.ndarray
    squared_error: np.ndarray
    k: int
    seed: int
    labels: list[str] | None = None
    rows: np.ndarray | None = None
    seconds: float = 0.0
    written: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.neg_log_px)

    def columns(self) -> dict:
        out: dict = {"index": np.arange(len(self))}
        if self.rows is not None:
            out["row"] = self.rows
        if self.labels is not None:
            out["label"] = self.labels
        return out | {
            f"neg_log_px_k{self.k}": self.neg_log_px,
            "neg_elbo": self.neg_elbo,
            "recon_nll": self.recon,
            "kl": self.kl,
            "squared_error": self.squared_error,
        }

    def write_csv(self, path: str | Path) -> Path:
        """One row per example: index, row (tables), label, then the scores."""
        return write_csv(path, self.columns())

    def most_anomalous(self, n: int) -> np.ndarray:
        """Indices of the n highest -log p(x), highest first."""
        return np.argsort(-self.neg_log_px, kind="stable")[:n]


def per_example_elbo(
    model: VAE, x: torch.Tensor, batch_size: int, seed: int, precision: str = "fp32"
) -> dict[str, torch.Tensor]:
    """-ELBO, recon and KL per example (N,) each, drawn exactly as `estimate.elbo_sums`
    draws its sums (one generator seeded with `seed`, the same batches)."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {"loss": [], "recon": [], "kl": []}
    with inference(model), autocast(x.device, precision):
        for start in range(0, x.shape[0], batch_size):
            batch = x[start : start + batch_size]
            terms = negative_elbo(batch, model(batch, generator), model.likelihood.nll)
            for key, value in terms.items():
                parts[key].append(value.float())
    return {key: torch.cat(values) for key, values in parts.items()}


def squared_error(model: VAE, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Sum over dimensions of (x - E[x|z = posterior mean])^2, per example (N,)."""
    out = []
    for start in range(0, x.shape[0], batch_size):
        batch = x[start : start + batch_size]
        recon = pictures.reconstruct(model, batch).to(batch.device)
        out.append((batch.float() - recon).pow(2).flatten(1).sum(dim=1))
    return torch.cat(out)


def score_split(
    model: VAE, split: Split, config: EvalConfig, binarize: str, progress: bool = True
) -> Scores:
    """Every score of every example of `split` (on the model's device) under a protocol."""
    started = time.perf_counter()
    x = to_unit(evaluation_images(split.images, binarize, config.seed))
    elbo = per_example_elbo(model, x, config.batch_size, config.seed, config.precision)
    log_px = importance_weighted_estimates(model, x, config, progress)
    error = squared_error(model, x, config.batch_size)
    rows = None if split.rows is None else split.rows.cpu().numpy()
    as_numpy = {key: value.float().cpu().numpy() for key, value in elbo.items()}
    return Scores(
        neg_log_px=(-log_px).float().cpu().numpy(),
        neg_elbo=as_numpy["loss"],
        recon=as_numpy["recon"],
        kl=as_numpy["kl"],
        squared_error=error.float().cpu().numpy(),
        k=config.k,
        seed=config.seed,
        labels=label_names(split),
        rows=rows,
        seconds=time.perf_counter() - started,
    )


def anomaly_picture(split: Split, scores: Scores, path: str | Path, n: int = 64) -> Path:
    """The n most anomalous images (highest -log p(x) first, row by row), 8 a row."""
    top = torch.as_tensor(scores.most_anomalous(n).copy(), device=split.images.device)
    images = to_unit(split.images[top]).float()
    return pictures.save_png(pictures.grid(images), path, scale=2)
