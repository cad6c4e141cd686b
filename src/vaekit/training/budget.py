"""Will a run fit in memory? A lower bound, told before the model is built.

A model built for 4000x4000 images, or a batch of a million, is allocated in one
go and the OOM killer ends the process without a word. The model is built on
PyTorch's meta device (shapes only, no memory) to count its parameters; with the
batch's inputs and outputs this gives a bound the run cannot go below, so a
refusal is never a false alarm.
"""

from __future__ import annotations

from typing import Any

import torch

from vaekit import memory
from vaekit.config import RunConfig
from vaekit.errors import ResourceError
from vaekit.models import build_model

# Per parameter: the weight, its gradient and Adam's two moments, float32.
BYTES_PER_PARAMETER = 4 * 4
# Per pixel of a training example: the float input, the decoder's output and its
# gradient, float32 (activations inside the network come on top).
BYTES_PER_TRAIN_PIXEL = 3 * 4
BYTES_PER_EVAL_PIXEL = 2 * 4


def parameter_count(
    config: RunConfig, image_shape: tuple[int, int, int], layout: Any = None
) -> int:
    """The model's parameter count, from a build on the meta device (no memory used);
    sizes too large for PyTorch to even describe are a ResourceError. `layout`: a
    table's columns (`data.tables`), which the mixed likelihood needs."""
    try:
        with torch.device("meta"):
            model = build_model(config.model, image_shape, layout)
        return sum(p.numel() for p in model.parameters())
    except (RuntimeError, OverflowError, ValueError, TypeError) as exc:  # sizes overflow
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ResourceError(
            f"{config.data.dataset}: {config.model.name} cannot be built for {image_shape} "
            f"images with these sizes ({first}); use a smaller --latent-dim or --hidden-dim"
        ) from None


def training_bytes(
    config: RunConfig,
    image_shape: tuple[int, int, int],
    n_train: int,
    n_test: int,
    layout: Any = None,
) -> tuple[int, int, int]:
    """(total, weights and optimiser state, largest batch) in bytes, at least."""
    pixels = image_shape[0] * image_shape[1] * image_shape[2]
    k = config.objective.samples_per_example() or 1
    batch = min(config.train.batch_size, n_train) * k
    per_step = batch * pixels * BYTES_PER_TRAIN_PIXEL
    per_eval = min(config.train.eval_batch_size, n_test) * pixels * BYTES_PER_EVAL_PIXEL
    weights = parameter_count(config, image_shape, layout) * BYTES_PER_PARAMETER
    largest = max(per_step, per_eval)
    return weights + largest, weights, largest


def check_training_fits(
    config: RunConfig,
    image_shape: tuple[int, int, int],
    n_train: int,
    n_test: int,
    device: torch.device,
    data_bytes: int = 0,
    layout: Any = None,
) -> None:
    """ResourceError with the estimate when the run cannot fit on `device`; `data_bytes`
    counts a dataset that will be copied there too (a GPU)."""
    total, weights, batch = training_bytes(config, image_shape, n_train, n_test, layout)
    c, h, w = image_shape
    hidden = getattr(config.model, "hidden_dim", None)  # not every family has dense layers
    sizes = ("" if hidden is None else f"hidden {hidden}, ") + f"batch {config.train.batch_size}"
    memory.require(
        total + data_bytes,
        f"{config.data.dataset}: training {config.model.name} on {c}x{h}x{w} images ({sizes})",
        f"at least {memory.human(weights)} for the weights and Adam's state and "
        f"{memory.human(batch)} for a batch; use a smaller --image-size, --batch-size, "
        "--hidden-dim or --latent-dim",
        device,
    )
