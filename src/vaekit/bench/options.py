"""What `vaekit bench` measures: the parts, their order, and the options every part reads.

Kept free of torch and of the other bench modules, so the CLI can build options and
every part can read them without importing anything heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaekit.config.registry import PRECISION

# A fixed order: the eval part reuses the model the vaekit part trained in fp32.
PARTS = ("seed", "plain", "graphed", "floor", "vaekit", "pythae", "eval", "profile", "scaling")
TRAIN_IMAGES = 60_000
PYTHAE_PYTHON = ".venv-pythae/bin/python"
SEED_SIZES = {"batch": 128, "hidden": 400, "latent": 2}  # the seed notebook's model


@dataclass
class BenchOptions:
    """What `vaekit bench` measures; `quick()` shrinks it to well under a minute."""

    data_dir: str | None = None
    epochs: int = 10
    repetitions: int = 3
    parts: tuple[str, ...] = PARTS
    precisions: tuple[str, ...] = PRECISION.names()  # all; fp16 needs CUDA: skipped on CPU
    device: str = "auto"
    threads: int | None = None  # torch.set_num_threads in every child; None: torch's default
    limit: int | None = None  # training examples (None: all 60,000)
    seed: int = 0
    pythae_python: str = PYTHAE_PYTHON
    eval_k: int = 5000
    eval_images: int = 500  # test images timed; the 10,000-image time is extrapolated
    eval_batch_size: int = 100
    scaling_epochs: int = 3
    batch_sizes: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048, 4096)
    hidden_sizes: tuple[int, ...] = (400, 800, 1024, 2048)
    latent_sizes: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    work_dir: str | None = None  # run folders of the measured trainings (default: a temp dir)
    quick: bool = False

    @classmethod
    def quick_options(cls, **overrides: Any) -> BenchOptions:
        """2,000 examples, 2 epochs (1 timed), 1 repetition, small evaluation and tables."""
        values: dict[str, Any] = dict(
            epochs=2,
            repetitions=1,
            limit=2000,
            eval_k=100,
            eval_images=50,
            scaling_epochs=2,
            batch_sizes=(64, 512),
            hidden_sizes=(400, 800),
            latent_sizes=(2, 16),
            quick=True,
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def examples(options: BenchOptions) -> int:
    """Training examples per epoch: what samples/s divides by."""
    return min(options.limit or TRAIN_IMAGES, TRAIN_IMAGES)


def base_spec(options: BenchOptions) -> dict[str, Any]:
    """The JSON spec every child starts from: data, seed, threads, device, the seed's sizes."""
    return {
        "data_dir": options.data_dir,
        "epochs": options.epochs,
        "seed": options.seed,
        "limit": options.limit,
        "threads": options.threads,
        "device": options.device,
        "batch_size": SEED_SIZES["batch"],
        "hidden": SEED_SIZES["hidden"],
        "latent": SEED_SIZES["latent"],
    }


def child_env(options: BenchOptions) -> dict[str, str] | None:
    """Environment for a child that is not ours (`vaekit train`, pythae): its thread count."""
    if not options.threads:
        return None
    return {"OMP_NUM_THREADS": str(options.threads), "VAEKIT_THREADS": str(options.threads)}


def bench_device(options: BenchOptions) -> str:
    """The device every part measures on, resolved once (`auto` becomes cpu or cuda)."""
    from vaekit.runtime import resolve_device  # imports torch: only the parts that need it pay

    return str(resolve_device(options.device))


def precisions(options: BenchOptions) -> tuple[list[str], dict[str, str]]:
    """The precisions to measure on this device, and why the others are skipped."""
    on_cpu = bench_device(options).startswith("cpu")
    kept, skipped = [], {}
    for precision in options.precisions:
        if precision == "fp16" and on_cpu:
            skipped[precision] = "fp16 autocast needs a CUDA device"
        else:
            kept.append(precision)
    return kept, skipped


def work_dir(options: BenchOptions) -> Path:
    """Where the measured run folders go; the runner sets it before any part runs."""
    if options.work_dir is None:
        raise ValueError("BenchOptions.work_dir is set by vaekit.bench.runner.run")
    return Path(options.work_dir)
