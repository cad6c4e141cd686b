"""The matrix-product floor: one epoch of the model's matrix products alone.

No training loop can beat it on the same machine, so `vaekit train`'s time divided by
the floor's says how much is left to gain; its FLOP count gives GFLOP/s. On the CPU in
fp32 the products are timed twice, with `torch.mm` and with the sgemm the fast path's
kernels call (`vaekit.native.blas`: numpy's OpenBLAS where it beats PyTorch's MKL), and
the floor is the faster of the two: the machine's, not one library's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vaekit.bench.options import SEED_SIZES, BenchOptions, base_spec, examples, precisions
from vaekit.bench.processes import run_child
from vaekit.bench.summary import summarize

if TYPE_CHECKING:
    import torch

Product = tuple[int, int, int, bool, bool]  # m, k, n, transpose a, transpose b


def mlp_products(batch: int, hidden: int, latent: int, pixels: int = 784) -> list[Product]:
    """(m, k, n, transpose a, transpose b) of each matrix product of one MLP-VAE step.

    Forward: fc1, fc_mu, fc_logvar, fc3, fc4. Backward: each layer's weight gradient and,
    except for fc1 (the images need none), its input gradient.
    """
    forward = [
        (batch, pixels, hidden),  # fc1
        (batch, hidden, latent),  # fc_mu
        (batch, hidden, latent),  # fc_logvar
        (batch, latent, hidden),  # fc3
        (batch, hidden, pixels),  # fc4
    ]
    products = [(m, k, n, False, True) for m, k, n in forward]  # x @ W.T
    for index, (m, k, n) in enumerate(forward):
        products.append((n, m, k, True, False))  # dW = g.T @ x: (n, m) @ (m, k)
        if index:
            products.append((m, n, k, False, False))  # dx = g @ W: (m, n) @ (n, k)
    return products


def products_flops(products: list[Product]) -> int:
    """Flops of a list of products, 2 per multiply-add."""
    return sum(2 * m * k * n for m, k, n, _, _ in products)


def epoch_flops(examples: int, batch: int, hidden: int, latent: int) -> int:
    """Multiply-add flops of one epoch's matrix products (2 per multiply-add)."""
    full, rest = divmod(examples, batch)
    flops = full * products_flops(mlp_products(batch, hidden, latent))
    return flops + (products_flops(mlp_products(rest, hidden, latent)) if rest else 0)


def _operands(
    spec: dict[str, Any], size: int, device: torch.device, dtype: torch.dtype
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random operands of one step's products; strided views stand where autograd passes
    them (W.T in the forward, g.T for weight gradients), so the kernels are training's."""
    import torch

    out = []
    for m, k, n, ta, tb in mlp_products(size, spec["hidden"], spec["latent"]):
        a = torch.randn(k, m) if ta else torch.randn(m, k)
        b = torch.randn(n, k) if tb else torch.randn(k, n)
        a, b = a.to(device, dtype), b.to(device, dtype)
        out.append((a.t() if ta else a, b.t() if tb else b))
    return out


def child_floor(spec: dict[str, Any]) -> dict[str, Any]:
    """One epoch of the model's matrix products alone, on random operands of the right
    shapes, after a warm-up in which the library picks and caches its kernels."""
    import torch

    from vaekit.runtime import resolve_device

    device = resolve_device(spec["device"])
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[
        spec["precision"]
    ]
    full, rest = divmod(spec["examples"], spec["batch_size"])
    sizes = [spec["batch_size"]] * full + ([rest] if rest else [])
    shapes = {size: _operands(spec, size, device, dtype) for size in set(sizes)}
    for size in list(shapes)[:1]:
        for _ in range(20):
            for a, b in shapes[size]:
                torch.mm(a, b)
    seconds = []
    for _ in range(spec["epochs"]):
        started = time.perf_counter()
        for size in sizes:
            for a, b in shapes[size]:
                torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    flops = epoch_flops(spec["examples"], spec["batch_size"], spec["hidden"], spec["latent"])
    out = {"seconds": seconds, "gflop_per_epoch": flops / 1e9}
    if device.type == "cpu" and dtype == torch.float32:
        out |= _native_floor(spec, sizes, shapes)
    return out


def kernel_products(
    lib: Any, products: list[Product], operands: list[tuple[torch.Tensor, torch.Tensor]]
) -> Callable[[int], None]:
    """`run(repeat)`: the products, each on its operands (as `_operands` makes them) into
    an output of its own, through the C kernels' gemm (`vk_products`), `repeat` times. The
    closure holds the tensors the C side points into."""
    import ctypes

    import torch

    from vaekit import native

    dims, ops = [], []
    for (m, k, n, ta, tb), (a, b) in zip(products, operands, strict=True):
        dims += [int(ta), int(tb), m, n, k]
        ops += [a, b, torch.empty(m, n)]
    dims_c, pointers = (ctypes.c_int * len(dims))(*dims), native.pointers(ops)

    def run(repeat: int, ops: list = ops) -> None:
        lib.vk_products(len(products), dims_c, pointers, repeat)

    return run


def _native_floor(
    spec: dict[str, Any], sizes: list[int], shapes: dict[int, list]
) -> dict[str, Any]:
    """The same epoch of products through the C kernels' own gemm, one call per batch
    (as `vk_step` makes them); {} without a compiler."""
    from vaekit import native

    lib = native.load()
    if lib is None:
        return {}
    runs = {
        size: kernel_products(lib, mlp_products(size, spec["hidden"], spec["latent"]), operands)
        for size, operands in shapes.items()
    }
    for _ in range(20):
        runs[sizes[0]](1)
    seconds = []
    for _ in range(spec["epochs"]):
        started = time.perf_counter()
        for size in sizes:
            runs[size](1)
        seconds.append(time.perf_counter() - started)
    return {"native_seconds": seconds, "sgemm": lib.sgemm.name}


def floor_summary(
    options: BenchOptions,
    precision: str,
    batch: int,
    hidden: int,
    latent: int,
    epochs: int,
    repetitions: int,
) -> dict[str, Any]:
    """The floor of one model size and precision, summarised like a training run."""
    spec = base_spec(options) | {
        "precision": precision,
        "examples": examples(options),
        "batch_size": batch,
        "hidden": hidden,
        "latent": latent,
        "epochs": epochs,
    }
    reps = []
    for _ in range(repetitions):
        done = run_child("floor", spec)
        reps.append(done.record | {"peak_rss_mib": done.peak_rss_mib})
    # every floor epoch follows a warm-up, so all are timed
    summary = summarize(reps, examples(options), timed_from=0)
    if "native_seconds" in reps[0]:
        native = [r | {"seconds": r["native_seconds"]} for r in reps]
        kernels = summarize(native, examples(options), timed_from=0)
        summary["torch_mm_s_per_epoch"] = summary["s_per_epoch"]
        summary["kernels_s_per_epoch"] = kernels["s_per_epoch"]
        summary["sgemm"] = reps[0]["sgemm"]
        if kernels["s_per_epoch"] < summary["s_per_epoch"]:
            summary = summary | {k: v for k, v in kernels.items() if k in summary}
            summary["floor_from"] = reps[0]["sgemm"]
    summary["gflop_per_epoch"] = reps[0]["gflop_per_epoch"]
    summary["gflop_per_s"] = summary["gflop_per_epoch"] / summary["s_per_epoch"]
    return summary


def part_floor(options: BenchOptions, log: Callable[[str], None]) -> dict[str, Any]:
    """The seed model's floor in every precision this device runs."""
    kept, skipped = precisions(options)
    out: dict[str, Any] = {"skipped": skipped}
    epochs = max(2, min(options.epochs, 5))
    for precision in kept:
        out[precision] = s = floor_summary(
            options, precision, **SEED_SIZES, epochs=epochs, repetitions=options.repetitions
        )
        log(f"  floor {precision}: {s['s_per_epoch']:.3f} s/epoch, {s['gflop_per_s']:.0f} GFLOP/s")
        if "sgemm" in s:
            log(
                f"    torch.mm {s['torch_mm_s_per_epoch']:.3f} s/epoch, the kernels' sgemm "
                f"({s['sgemm']}) {s['kernels_s_per_epoch']:.3f} s/epoch"
            )
    return out
