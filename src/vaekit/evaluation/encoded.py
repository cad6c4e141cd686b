"""`vaekit encode`: the posterior q(z|x) of every example, written for other tools.

One pass with zero noise gives each latent group's mean and log-variance, each group
at its posterior given the groups above it at their means (for a one-group model,
exactly `model.encode`). Written as `.npz` (named arrays in one file, read with
`numpy.load` and no pickle) or `.csv` (one row per example).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vaekit.data import Split, to_unit
from vaekit.errors import ConfigError
from vaekit.files import write_atomic, write_csv
from vaekit.models import VAE
from vaekit.runtime import autocast, inference

FORMATS = (".npz", ".csv")


@dataclass
class Encoding:
    """Posterior means and log-variances (N, D) with the groups concatenated, top first;
    `groups` their sizes; `labels` as names (None for unlabelled data); `rows` the file
    row of each example for tables."""

    mu: np.ndarray
    logvar: np.ndarray
    groups: list[int]
    labels: list[str] | None = None
    rows: np.ndarray | None = None

    def unit_names(self) -> list[str]:
        """z_0, z_1, ... for one group; z_G_U (group G, unit U) for several."""
        if len(self.groups) == 1:
            return [str(u) for u in range(self.groups[0])]
        return [f"{g}_{u}" for g, size in enumerate(self.groups) for u in range(size)]

    def write(self, path: str | Path) -> Path:
        """To `.npz` (arrays mu, logvar, groups, and label, row where known) or `.csv`."""
        path = Path(path)
        if path.suffix not in FORMATS:
            raise ConfigError(f"-o {path}: write encodings as {' or '.join(FORMATS)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = {"label": np.asarray(self.labels, dtype=str)} if self.labels is not None else {}
        if self.rows is not None:
            extra["row"] = self.rows
        if path.suffix == ".npz":
            buffer = io.BytesIO()
            groups = np.asarray(self.groups, dtype=np.int64)
            np.savez(buffer, mu=self.mu, logvar=self.logvar, groups=groups, **extra)
            return write_atomic(path, buffer.getvalue())
        columns: dict = {"index": np.arange(len(self.mu))} | extra
        units = self.unit_names()
        columns |= {f"mu_{u}": self.mu[:, j] for j, u in enumerate(units)}
        columns |= {f"logvar_{u}": self.logvar[:, j] for j, u in enumerate(units)}
        return write_csv(path, columns)


def label_names(split: Split) -> list[str] | None:
    """Each example's label as text: its name where the data has names, else its number;
    None for data without labels (every label 0 and no names)."""
    codes = split.labels.cpu().tolist()
    if split.names:
        return [split.names[c] if c < len(split.names) else str(c) for c in codes]
    if split.names is None and any(codes):
        return [str(c) for c in codes]
    return None


def posterior(
    model: VAE, x: torch.Tensor, batch_size: int = 1000, precision: str = "fp32"
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Every group's q(z|x) mean and log-variance for float inputs x, fp32, (N, D) each."""
    mus, logvars, sizes = [], [], [model.latent_dim]
    with inference(model), autocast(x.device, precision):
        for start in range(0, x.shape[0], batch_size):
            batch = x[start : start + batch_size]
            out = model(batch, noise=torch.zeros_like(model.noise(batch.shape[0])))
            mus.append(torch.cat([lat.q_mu.float() for lat in out.latents], dim=-1))
            logvars.append(torch.cat([lat.q_logvar.float() for lat in out.latents], dim=-1))
            sizes = [lat.q_mu.shape[-1] for lat in out.latents]
    return torch.cat(mus), torch.cat(logvars), sizes


def encode_split(
    model: VAE, split: Split, batch_size: int = 1000, precision: str = "fp32"
) -> Encoding:
    """The posterior of every example of a split (on the model's device), batched."""
    if not model.gaussian_latents:
        raise ConfigError("a model with discrete codes has no posterior mean and log-variance")
    mu, logvar, sizes = posterior(model, to_unit(split.images), batch_size, precision)
    rows = None if split.rows is None else split.rows.cpu().numpy()
    return Encoding(mu.cpu().numpy(), logvar.cpu().numpy(), sizes, label_names(split), rows)
