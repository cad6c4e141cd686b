"""The training loops bench compares `vaekit train` against: the seed notebook's, a plain
in-memory loop, and that loop replayed from a CUDA graph.

Each `child_*` runs inside a fresh process (`vaekit.bench.child`) and returns a JSON-ready
record of seconds and losses per epoch; each `part_*` runs its child once per repetition
in the bench's parent process and summarises.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vaekit.bench.options import BenchOptions, bench_device
from vaekit.bench.processes import repeated

if TYPE_CHECKING:
    import torch


def child_seed(spec: dict[str, Any]) -> dict[str, Any]:
    """The notebook's training cell, unchanged (`seed_reference.run`)."""
    from vaekit.bench import seed_reference

    losses, seconds = seed_reference.run(
        spec["data_dir"], spec["epochs"], spec["seed"], log=lambda _: None, limit=spec["limit"]
    )
    return {"seconds": seconds, "losses": losses}


def _images_and_model(spec: dict[str, Any], device: torch.device) -> tuple[Any, Any]:
    """The training images resident on `device` and the spec's MLP VAE there, seeded."""
    import torch

    from vaekit.config import MLPConfig
    from vaekit.data import load_split
    from vaekit.models import build_model

    train = load_split("mnist", "train", spec["data_dir"], False).subset(spec["limit"])
    torch.manual_seed(spec["seed"])
    model = build_model(
        MLPConfig(hidden_dim=spec["hidden"], latent_dim=spec["latent"]), (1, 28, 28)
    )
    return train.images.to(device), model.to(device)


def child_plain(spec: dict[str, Any]) -> dict[str, Any]:
    """The shortest fast loop: in-memory batches, logits loss, fused Adam, one sync per epoch.

    No test loss, no checkpoint, no skipping of bad steps: the yardstick for what
    vaekit's extras cost, and the reference for its loss.
    """
    import torch

    from vaekit.data import epoch_order, iterate_batches, to_unit
    from vaekit.objectives import negative_elbo
    from vaekit.runtime import resolve_device

    device = resolve_device(spec["device"])
    resident, model = _images_and_model(spec, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    seconds, losses = [], []
    for epoch in range(spec["epochs"]):
        started = time.perf_counter()
        total = torch.zeros((), device=device)
        order = epoch_order(len(resident), spec["seed"], epoch + 1, device)
        for images in iterate_batches(resident, spec["batch_size"], order):
            x = to_unit(images)
            out = model(x)
            loss = negative_elbo(x, out)["loss"].sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        losses.append(total.item() / len(resident))
        seconds.append(time.perf_counter() - started)
    return {"seconds": seconds, "losses": losses}


def _capture(step: Callable[[torch.Tensor], None], index: torch.Tensor, zero: Callable) -> Any:
    """PyTorch's whole-network capture recipe: warm-up steps on a side stream, then one
    step recorded as a CUDA graph (the warm-up steps train too; epoch 1 is not timed)."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            zero()
            step(index)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    zero()
    with torch.cuda.graph(graph):
        step(index)
    return graph


def child_graphed(spec: dict[str, Any]) -> dict[str, Any]:
    """The plain loop on a GPU with each full batch's step replayed from one CUDA graph.

    What graph capture would give `vaekit train`: a step of the seed model launches some
    hundred small kernels, and replaying them as one graph removes the per-kernel launch
    cost. Capturable Adam and static batch indices make the step replayable; the short
    last batch of an epoch runs eagerly on the same parameters and optimiser, its
    gradients zeroed in place first.
    """
    import torch

    from vaekit.data import epoch_order, to_unit
    from vaekit.objectives import negative_elbo
    from vaekit.runtime import resolve_device

    device = resolve_device(spec["device"])
    if device.type != "cuda":
        raise RuntimeError("CUDA graphs need a CUDA device")
    resident, model = _images_and_model(spec, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True, capturable=True)
    batch = spec["batch_size"]
    index = torch.arange(batch, device=device)  # the batch a replay trains on: set per step
    total = torch.zeros((), device=device)

    def step(indices: torch.Tensor) -> None:
        x = to_unit(resident[indices])
        loss = negative_elbo(x, model(x))["loss"].sum()
        loss.backward()
        optimizer.step()
        total.add_(loss.detach())

    graph = _capture(step, index, lambda: optimizer.zero_grad(set_to_none=True))
    seconds, losses = [], []
    for epoch in range(spec["epochs"]):
        started = time.perf_counter()
        total.zero_()
        order = epoch_order(len(resident), spec["seed"], epoch + 1, device)
        full = len(order) // batch
        for start in range(0, full * batch, batch):
            index.copy_(order[start : start + batch])
            graph.replay()
        if full * batch < len(order):
            for p in model.parameters():
                p.grad.zero_()
            step(order[full * batch :])
        losses.append(total.item() / len(resident))
        seconds.append(time.perf_counter() - started)
    return {"seconds": seconds, "losses": losses}


def part_seed(options: BenchOptions, log: Callable[[str], None]) -> dict[str, Any]:
    """The seed notebook's pipeline: what every speed-up is measured against."""
    return repeated("seed", "seed notebook", options, log)


def part_plain(options: BenchOptions, log: Callable[[str], None]) -> dict[str, Any]:
    """The plain loop: what vaekit's extras (test loss, checkpoint, guards) cost."""
    return repeated("plain", "plain loop", options, log)


def part_graphed(options: BenchOptions, log: Callable[[str], None]) -> dict[str, Any]:
    """The plain loop as a CUDA graph; skipped (not failed) off a GPU."""
    if not bench_device(options).startswith("cuda"):
        note = "CUDA graphs need a CUDA device"
        log(f"  graphed: skipped ({note})")
        return {"skipped": note}
    return repeated("graphed", "plain loop, CUDA graph", options, log)
