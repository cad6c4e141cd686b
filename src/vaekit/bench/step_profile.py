"""What is left of the fast epoch: each piece of the MLP fast path's step, timed apart.

(Not named `profile`: pythae's driver runs as a script from this folder, and the standard
library's cProfile imports a module of that name.)

Every piece runs on the seed model's real buffers (`training.fast_mlp.FastMLPStep` on
MNIST's training images) in interleaved rounds, so that load drifting over the part
weighs on every piece alike; the medians are given in milliseconds and as multiples of
F, the step's 14 matrix products through the kernels' own sgemm. The per-epoch pieces
(test loss over the test images, the checkpoint) are divided by the epoch's steps.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaekit.bench.options import BenchOptions, base_spec, examples
from vaekit.bench.processes import run_child

PIECES = {
    "products": "the 14 matrix products alone (F)",
    "gather": "gather of the batch (uint8 to float) and its noise, from Python",
    "forward_backward": "forward, backward and gradient norm, one C call (products included)",
    "adam": "Adam, one C call",
    "step": "the whole step as the epoch loop takes it (16 per call, Python included)",
    "test_loss": "per-epoch test loss, 10,000 images (per step)",
    "checkpoint": "checkpoint write (per step)",
}


REPEAT = 16  # the per-step pieces run this many times in a row, as the C loop runs steps


def _pieces(
    spec: dict[str, Any], folder: Path
) -> tuple[dict[str, Callable[[], Any]], dict[str, float]]:
    """One callable per piece, on one FastMLPStep of the seed configuration, and what to
    divide each one's time by to make it per step. Each per-step piece runs REPEAT times
    in a row, so that its data is as warm in the caches as in the training loop."""
    import ctypes

    import torch

    from vaekit.bench.floor import _operands, kernel_products, mlp_products
    from vaekit.config import RunConfig
    from vaekit.data import load_data
    from vaekit.evaluation.fast_mlp import elbo_sums
    from vaekit.training import fast_mlp
    from vaekit.training.state import build_state, save_checkpoint

    config = RunConfig()
    config.data.data_dir, config.data.download = spec["data_dir"], False
    config.data.limit = spec.get("limit")
    train, test = load_data(config.data, "train"), load_data(config.data, "test")
    state = build_state(config, tuple(train.images.shape[1:]))
    step = fast_mlp.fast_step(state, train)
    if step is None or step.lib is None:
        raise RuntimeError("the profile needs the fast path's C kernels (a C compiler)")
    lib, B = step.lib, step.batch
    order = torch.randperm(len(train)).repeat(-(-REPEAT * B // len(train)))  # enough batches
    step.steps(order, 0, REPEAT * B, [1.0] * REPEAT)  # Adam's state exists from here on
    operands = _operands(spec, B, torch.device("cpu"), torch.float32)
    products = kernel_products(lib, mlp_products(B, step.H, step.L), operands)
    hyper = (ctypes.c_double * 6)(*step.hyper())
    per_step = len(train) / B

    def repeated(piece: Callable[[], Any]) -> Callable[[], None]:
        return lambda: [piece() for _ in range(REPEAT)]

    pieces = {
        "products": lambda: products(REPEAT),
        "gather": repeated(lambda: step.load_batch(order, 0, B)),
        "forward_backward": repeated(lambda: step.forward_backward(B, 1.0, True)),
        "adam": repeated(
            lambda: lib.vk_adam(step.D, step.H, step.L, step.pointers, step._adam_p, hyper)
        ),
        "step": lambda: step.steps(order, 0, REPEAT * B, [1.0] * REPEAT),
        "test_loss": lambda: elbo_sums(state.model, test.images, 1000, 0),
        "checkpoint": lambda: save_checkpoint(state, folder, tuple(train.images.shape[1:])),
    }
    per_call = dict.fromkeys(("products", "gather", "forward_backward", "adam", "step"), REPEAT)
    return pieces, per_call | {"test_loss": per_step, "checkpoint": per_step}


def child_profile(spec: dict[str, Any]) -> dict[str, Any]:
    """Medians over interleaved rounds of each piece, in seconds per step."""
    rounds = max(5, spec["epochs"] * 5)
    with tempfile.TemporaryDirectory(prefix="vaekit-profile-") as folder:
        pieces, divide = _pieces(spec, Path(folder))
        times: dict[str, list[float]] = {name: [] for name in pieces}
        for _ in range(rounds):
            for name, piece in pieces.items():
                started = time.perf_counter()
                piece()
                times[name].append((time.perf_counter() - started) / divide[name])
    return {
        "seconds": {name: statistics.median(ts) for name, ts in times.items()},
        "rounds": rounds,
    }


def part_profile(options: BenchOptions, log: Callable[[str], None]) -> dict[str, Any]:
    """The fast step's pieces, as ms per step and as multiples of F."""
    spec = base_spec(options) | {"examples": examples(options)}
    record = run_child("profile", spec).record
    seconds = record["seconds"]
    out = {"rounds": record["rounds"], "pieces": {}}
    for name, what in PIECES.items():
        ms, times_f = seconds[name] * 1e3, seconds[name] / seconds["products"]
        out["pieces"][name] = {"what": what, "ms": ms, "times_f": times_f}
        log(f"  {what}: {ms:.3f} ms, {times_f:.3f} F")
    return out
