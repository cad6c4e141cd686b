"""The one place that decides device, precision and seeding."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import random
from collections.abc import Callable, Iterator

import numpy as np
import torch

from vaekit.config.registry import DEVICE, PRECISION
from vaekit.errors import ConfigError

# precision -> the dtype autocast computes in (None: plain fp32); names declared in config.
PRECISION.register("fp32", None)
PRECISION.register("bf16", torch.bfloat16)
PRECISION.register("fp16", torch.float16)


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA without one is a config error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA device is available")
    if name not in DEVICE:
        raise ConfigError(f"device must be one of {', '.join(DEVICE)}; got {name!r}")
    if name == "cuda":  # under torchrun, each process drives the GPU of its local rank
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed every generator a run may touch, so that runs repeat."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed-precision context for the forward pass; fp32 is a no-op."""
    if precision not in PRECISION:
        raise ConfigError(f"precision must be one of {', '.join(PRECISION)}; got {precision!r}")
    dtype = PRECISION.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("fp16 needs a CUDA device; use bf16 on the CPU")
    return torch.autocast(device_type=device.type, dtype=dtype)


def needs_grad_scaler(device: torch.device, precision: str) -> bool:
    """fp16 gradients underflow without loss scaling; bf16 has fp32's range."""
    return precision == "fp16" and device.type == "cuda"


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """Global RNG state as tensors, for checkpoints that resume bit for bit."""
    state = {"torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["torch_cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["torch_cpu"])
    if device.type == "cuda" and "torch_cuda" in state:
        torch.cuda.set_rng_state(state["torch_cuda"], device)


@contextlib.contextmanager
def inference(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no autograd, restoring the model's previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def flush_denormals(device: torch.device) -> Iterator[None]:
    """Flush denormal floats to zero (FTZ/DAZ) on every CPU thread torch computes on.

    Training drives some values through the denormal range (below 1.2e-38): Adam's first
    moment of a weight whose gradient is zero decays by 0.9 per step towards it, and x86
    cores take a microcode assist, ~100x slower, on every such operand. Flushing them to
    zero changes nothing above 1e-38 and measured ~15 % per epoch of the seed model
    (BENCHMARKS.md). The flag lives in each thread's MXCSR register, so it is set on
    torch's OpenMP workers too, and cleared on all of them on exit.
    """
    if device.type != "cpu":
        yield
        return
    _on_every_cpu_thread(lambda: torch.set_flush_denormal(True))
    try:
        yield
    finally:
        _on_every_cpu_thread(lambda: torch.set_flush_denormal(False))


def _on_every_cpu_thread(fn: Callable[[], object]) -> None:
    """Call `fn` on the calling thread and, with GNU OpenMP, once on each of its workers.

    The workers exist only after torch's first parallel operation, and inherit the
    calling thread's flags when created; those created earlier are reached through a
    parallel region of libgomp (the OpenMP runtime of torch's Linux wheels). Elsewhere
    only the calling thread is set, which costs speed, not correctness.
    """
    fn()
    library = _libgomp()
    if library is None or torch.get_num_threads() < 2:
        return
    callback = _GOMP_TASK(lambda _: fn())
    library.GOMP_parallel(callback, None, torch.get_num_threads(), 0)


_GOMP_TASK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


@functools.cache
def _libgomp() -> ctypes.CDLL | None:
    try:
        with open("/proc/self/maps") as maps:
            path = next((line.split()[-1] for line in maps if "/libgomp" in line), None)
        if path is None:
            return None
        library = ctypes.CDLL(path)
        library.GOMP_parallel.argtypes = [_GOMP_TASK, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        library.GOMP_parallel.restype = None
        return library
    except (OSError, AttributeError):
        return None
