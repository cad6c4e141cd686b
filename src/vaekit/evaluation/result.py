"""The result of `vaekit evaluate`, typed: what eval.json holds, field for field.

Report, pretrained figures, CLI and bench read these attributes instead of
string keys. `to_dict` gives eval.json's content unchanged from earlier
versions; `from_dict` reads it back (unknown keys are an error, so a renamed
field cannot be missed silently).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class NegElbo:
    """The negative ELBO with one sample of z, nats per image, and its two terms."""

    nats: float
    bits_per_dim: float
    recon: float
    kl: float


@dataclass
class Likelihood:
    """-log p(x), importance-weighted with k samples (Burda et al. 2015)."""

    k: int
    nll_nats: float
    nll_bits_per_dim: float
    stderr_nats: float


@dataclass
class LatentStats:
    """KL per dimension and group at the test set, and the active units."""

    dim: int
    groups: list[int]
    kl_per_group: list[float]
    kl_per_dim: list[float]
    mean_variance: list[float]
    active_units: int
    active_threshold: float


@dataclass
class FID:
    """A Fréchet distance in a dataset classifier's feature space, with its context."""

    name: str
    value: float
    generated: int
    reference: int
    floor_train_vs_test: float
    classifier_test_accuracy: float
    classifier: str | None = None


@dataclass
class Disentanglement:
    """MIG, DCI and the FactorVAE score of the posterior means, for data with factor
    labels (see `evaluation.disentanglement`); per-factor lists follow `factors`."""

    factors: list[str]
    mig: float
    mig_per_factor: list[float]
    dci_disentanglement: float
    dci_completeness: float
    dci_informativeness: float
    dci_informativeness_per_factor: list[float]
    factorvae_score: float
    factorvae_train_accuracy: float
    factorvae_active_dims: int
    examples: int


@dataclass
class EvalResult:
    """Everything one evaluation measured, with how it was measured."""

    images: int
    pixels: int
    binarize: str
    neg_elbo: NegElbo
    iwae: Likelihood
    latent: LatentStats
    fid: FID | None
    timing: dict[str, float]
    config: dict[str, Any]
    device: str
    checkpoint: str | None = None
    dataset: str | None = None
    split: str = "test"
    torch: str | None = None
    disentanglement: Disentanglement | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """eval.json's content, in its historical key order."""
        out: dict[str, Any] = {
            "checkpoint": self.checkpoint,
            "dataset": self.dataset,
            "split": self.split,
        }
        body = asdict(self)
        for name in ("images", "pixels", "binarize", "neg_elbo", "iwae", "latent", "fid"):
            out[name] = body[name]
        out |= {"timing": self.timing, "config": self.config, "device": self.device}
        if self.disentanglement is not None:
            out["disentanglement"] = body["disentanglement"]
        out |= self.extra
        out["torch"] = self.torch
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EvalResult:
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {name: raw[name] for name in known if name in raw}
        values["neg_elbo"] = NegElbo(**raw["neg_elbo"])
        values["iwae"] = Likelihood(**raw["iwae"])
        values["latent"] = LatentStats(**raw["latent"])
        values["fid"] = FID(**raw["fid"]) if raw.get("fid") else None
        if raw.get("disentanglement"):
            values["disentanglement"] = Disentanglement(**raw["disentanglement"])
        values["extra"] = {key: raw[key] for key in raw if key not in known}
        return cls(**values)
