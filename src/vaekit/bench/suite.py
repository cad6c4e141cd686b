"""`vaekit bench`: time the seed notebook, the matrix-product floor, vaekit and pythae
side by side, on the same machine and data, in one run.

Every measurement runs in a fresh child process (its own threads, allocator and
peak memory), one after the other, never two at once:

    seed     the notebook's pipeline (`seed_reference`: per-item PIL -> tensor, DataLoader)
    plain    a plain in-memory loop: batches cut from one tensor, logits loss, fused Adam
    graphed  the plain loop replayed from a CUDA graph (a GPU only): what capture would give
    floor    the model's matrix products alone, forward and backward, on random operands
    vaekit   `vaekit train` itself, as a user runs it (per-epoch test loss and checkpoint
             included), once per precision
    pythae   pythae's TrainingPipeline on the same model, in its own virtual environment
    eval     the importance-weighted log-likelihood estimate (`vaekit.evaluate`)
    scaling  `vaekit train` as batch, hidden and latent sizes grow, beside their floor

Each training measurement runs E epochs; the first is warm-up and the rest are
timed (seconds per epoch = the median over the timed epochs of all repetitions;
spread = the lowest and highest repetition median). The child's peak resident
memory comes from the kernel (`wait4`).
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vaekit.config.registry import PRECISION

PARTS = ("seed", "plain", "graphed", "floor", "vaekit", "pythae", "eval", "scaling")
TRAIN_IMAGES = 60_000
PYTHAE_PYTHON = ".venv-pythae/bin/python"


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


# ----------------------------------------------------------------- the children
# Each child function takes a JSON spec and returns a JSON-ready dict; it runs in
# its own process (`python -m vaekit.bench.suite child NAME SPEC`).


def _set_threads(spec: dict[str, Any]) -> None:
    import torch

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))


def child_seed(spec: dict[str, Any]) -> dict[str, Any]:
    """The notebook's training cell, unchanged (`seed_reference.run`)."""
    from vaekit.bench import seed_reference

    _set_threads(spec)
    losses, seconds = seed_reference.run(
        spec["data_dir"], spec["epochs"], spec["seed"], log=lambda _: None, limit=spec["limit"]
    )
    return {"seconds": seconds, "losses": losses}


def _images_and_model(spec: dict[str, Any], device: Any) -> tuple[Any, Any]:
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

    _set_threads(spec)
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


def child_graphed(spec: dict[str, Any]) -> dict[str, Any]:
    """The plain loop on a GPU with each full batch's step replayed from one CUDA graph.

    What graph capture would give `vaekit train`: a step of the seed model launches some
    hundred small kernels, and replaying them as one graph removes the per-kernel launch
    cost. Follows PyTorch's whole-network capture recipe (warm-up on a side stream,
    capturable Adam, static batch indices); the short last batch of an epoch runs eagerly
    on the same parameters and optimiser, its gradients zeroed in place first.
    """
    import torch

    from vaekit.data import epoch_order, to_unit
    from vaekit.objectives import negative_elbo
    from vaekit.runtime import resolve_device

    _set_threads(spec)
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

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up steps train too; the first epoch is not timed
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            step(index)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        step(index)
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


def mlp_products(batch: int, hidden: int, latent: int, pixels: int = 784) -> list[tuple]:
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


def products_flops(products: list[tuple]) -> int:
    return sum(2 * m * k * n for m, k, n, _, _ in products)


def epoch_flops(examples: int, batch: int, hidden: int, latent: int) -> int:
    """Multiply-add flops of one epoch's matrix products (2 per multiply-add)."""
    full, rest = divmod(examples, batch)
    flops = full * products_flops(mlp_products(batch, hidden, latent))
    return flops + (products_flops(mlp_products(rest, hidden, latent)) if rest else 0)


def child_floor(spec: dict[str, Any]) -> dict[str, Any]:
    """One epoch of the model's matrix products alone, on random operands of the right shapes.

    Strided views stand where autograd passes them (W.T in the forward, g.T for weight
    gradients), so the products are the ones training runs, and nothing else is.
    """
    import torch

    from vaekit.runtime import resolve_device

    _set_threads(spec)
    device = resolve_device(spec["device"])
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[
        spec["precision"]
    ]
    examples, batch = spec["examples"], spec["batch_size"]
    full, rest = divmod(examples, batch)
    sizes = [batch] * full + ([rest] if rest else [])

    def operands(size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for m, k, n, ta, tb in mlp_products(size, spec["hidden"], spec["latent"]):
            a = torch.randn(k, m) if ta else torch.randn(m, k)
            b = torch.randn(n, k) if tb else torch.randn(k, n)
            a, b = a.to(device, dtype), b.to(device, dtype)
            out.append((a.t() if ta else a, b.t() if tb else b))
        return out

    shapes = {size: operands(size) for size in set(sizes)}

    def epoch() -> None:
        for size in sizes:
            for a, b in shapes[size]:
                torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()

    for size in list(shapes)[:1]:  # warm-up: the library picks and caches its kernels
        for _ in range(20):
            for a, b in shapes[size]:
                torch.mm(a, b)
    seconds = []
    for _ in range(spec["epochs"]):
        started = time.perf_counter()
        epoch()
        seconds.append(time.perf_counter() - started)
    flops = epoch_flops(examples, batch, spec["hidden"], spec["latent"])
    return {"seconds": seconds, "gflop_per_epoch": flops / 1e9}


def child_eval(spec: dict[str, Any]) -> dict[str, Any]:
    """The importance-weighted log p(x) estimate of `vaekit.evaluate` on a trained model."""
    import torch

    from vaekit import api
    from vaekit.config import EvalConfig
    from vaekit.data import load_split, to_unit
    from vaekit.evaluation.estimate import importance_weighted_estimates

    _set_threads(spec)
    model = api.load(spec["run_dir"], spec["device"])
    device = next(model.parameters()).device
    test = load_split("mnist", "test", spec["data_dir"], False)
    x = to_unit(test.images[: spec["images"]]).to(device)
    config = EvalConfig(
        k=spec["k"], batch_size=spec["batch_size"], precision=spec["precision"], fid=False
    )
    importance_weighted_estimates(model, x[: min(10, len(x))], config, progress=False)  # warm-up
    started = time.perf_counter()
    log_px = importance_weighted_estimates(model, x, config, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "nll": -log_px.double().mean().item(), "images": len(x)}


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "seed": child_seed,
    "plain": child_plain,
    "graphed": child_graphed,
    "floor": child_floor,
    "eval": child_eval,
}


def _child_main(name: str, spec_json: str) -> None:
    import torch

    record = CHILDREN[name](json.loads(spec_json))
    record["threads"] = torch.get_num_threads()
    sys.stdout.write("\n" + json.dumps(record) + "\n")


# ------------------------------------------------------------ running children


@dataclass
class Finished:
    """A child process's last JSON line, its stdout lines with arrival times, its peak RSS."""

    record: dict[str, Any]
    lines: list[tuple[float, str]]
    wall: float
    peak_rss_mib: float


def run_process(command: list[str], env: dict[str, str] | None = None) -> Finished:
    """Run `command`, timestamping each stdout line as it arrives; raise on failure."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    lines = [(time.perf_counter() - started, line.rstrip("\n")) for line in proc.stdout]
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode:
        tail = "\n".join(stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{' '.join(command[:4])}... exited {proc.returncode}: {tail}")
    record = {}
    for _, line in reversed(lines):
        if line.startswith("{"):
            record = json.loads(line)
            break
    return Finished(record, lines, wall, usage.ru_maxrss / 1024)


def run_child(name: str, spec: dict[str, Any]) -> Finished:
    command = [sys.executable, "-m", "vaekit.bench.suite", "child", name, json.dumps(spec)]
    return run_process(command)


def run_vaekit_train(
    options: BenchOptions,
    run_dir: Path,
    precision: str,
    batch: int,
    hidden: int,
    latent: int,
    epochs: int,
    seed: int = 0,
) -> dict[str, Any]:
    """`vaekit train` in a child process; epoch times are the gaps between its epoch lines."""
    command = [sys.executable, "-m", "vaekit", "train", "--out", str(run_dir)]
    command += ["--epochs", str(epochs), "--precision", precision, "--batch-size", str(batch)]
    command += ["--hidden-dim", str(hidden), "--latent-dim", str(latent)]
    command += ["--seed", str(seed), "--device", options.device, "--no-download"]
    command += ["--no-pictures", "--no-plots", "--no-progress"]
    if options.data_dir:
        command += ["--data-dir", options.data_dir]
    if options.limit:
        command += ["--limit", str(options.limit)]
    env = {"OMP_NUM_THREADS": str(options.threads)} if options.threads else None
    done = run_process(command, env)
    stamps = [t for t, line in done.lines if line.startswith("Epoch ")]
    # Epoch 1 counts from the command's start (start-up, data loading): warm-up, not timed.
    seconds = stamps[:1] + [b - a for a, b in itertools.pairwise(stamps)]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {
        "seconds": seconds,
        "losses": [m["train_loss"] for m in metrics],
        "test_losses": [m["test_loss"] for m in metrics],
        "skipped": sum(m.get("train_skipped", 0) for m in metrics),
        "wall": done.wall,
        "peak_rss_mib": done.peak_rss_mib,
    }


# ------------------------------------------------------------------ statistics


def summarize(repetitions: list[dict[str, Any]], examples: int, timed_from: int = 1) -> dict:
    """Seconds per epoch over all repetitions: median, spread of repetition medians."""
    per_rep = []
    pooled: list[float] = []
    for rep in repetitions:
        timed = rep["seconds"][timed_from:] or rep["seconds"]
        per_rep.append(statistics.median(timed))
        pooled += timed
    median = statistics.median(pooled)
    out = {
        "s_per_epoch": median,
        "min": min(per_rep),
        "max": max(per_rep),
        "repetitions": len(repetitions),
        "timed_epochs": len(pooled),
        "samples_per_s": examples / median,
    }
    losses = [rep["losses"][-1] for rep in repetitions if rep.get("losses")]
    if losses:
        out["final_loss"] = statistics.mean(losses)
        out["final_losses"] = losses
    tests = [rep["test_losses"][-1] for rep in repetitions if rep.get("test_losses")]
    if tests:
        out["final_test_loss"] = statistics.mean(tests)
    peaks = [rep["peak_rss_mib"] for rep in repetitions if rep.get("peak_rss_mib")]
    if peaks:
        out["peak_rss_mib"] = max(peaks)
    return out


# ------------------------------------------------------------------ the parts


def _log_line(log: Callable[[str], None], name: str, summary: dict[str, Any]) -> None:
    loss = f", loss {summary['final_loss']:.2f}" if "final_loss" in summary else ""
    log(
        f"  {name}: {summary['s_per_epoch']:.3f} s/epoch "
        f"({summary['min']:.3f}-{summary['max']:.3f}){loss}"
    )


def _examples(options: BenchOptions) -> int:
    return min(options.limit or TRAIN_IMAGES, TRAIN_IMAGES)


def _base_spec(options: BenchOptions) -> dict[str, Any]:
    return {
        "data_dir": options.data_dir,
        "epochs": options.epochs,
        "seed": options.seed,
        "limit": options.limit,
        "threads": options.threads,
        "device": options.device,
        "batch_size": 128,
        "hidden": 400,
        "latent": 2,
    }


def _repeated(
    child: str, label: str, options: BenchOptions, log: Callable[[str], None]
) -> dict[str, Any]:
    """Run a child pipeline once per repetition (a new seed each) and summarise."""
    reps = []
    for rep in range(options.repetitions):
        done = run_child(child, _base_spec(options) | {"seed": options.seed + rep})
        reps.append(done.record | {"peak_rss_mib": done.peak_rss_mib})
    summary = summarize(reps, _examples(options))
    _log_line(log, label, summary)
    return summary


def part_seed(options: BenchOptions, log: Callable[[str], None]) -> dict[str, Any]:
    return _repeated("seed", "seed notebook", options, log)


def part_plain(options: BenchOptions, log: Callable[[str], None]) -> dict[str, Any]:
    return _repeated("plain", "plain loop", options, log)


def part_graphed(options: BenchOptions, log: Callable[[str], None]) -> dict[str, Any]:
    from vaekit.runtime import resolve_device

    if resolve_device(options.device).type != "cuda":
        note = "CUDA graphs need a CUDA device"
        log(f"  graphed: skipped ({note})")
        return {"skipped": note}
    return _repeated("graphed", "plain loop, CUDA graph", options, log)


def _precisions(options: BenchOptions) -> tuple[list[str], dict[str, str]]:
    from vaekit.runtime import resolve_device

    device = resolve_device(options.device)
    kept, skipped = [], {}
    for precision in options.precisions:
        if precision == "fp16" and device.type == "cpu":
            skipped[precision] = "fp16 autocast needs a CUDA device"
        else:
            kept.append(precision)
    return kept, skipped


def floor_summary(
    options: BenchOptions,
    precision: str,
    batch: int,
    hidden: int,
    latent: int,
    epochs: int,
    repetitions: int,
) -> dict[str, Any]:
    spec = _base_spec(options) | {
        "precision": precision,
        "examples": _examples(options),
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
    summary = summarize(reps, _examples(options), timed_from=0)
    summary["gflop_per_epoch"] = reps[0]["gflop_per_epoch"]
    summary["gflop_per_s"] = summary["gflop_per_epoch"] / summary["s_per_epoch"]
    return summary


def part_floor(options: BenchOptions, log: Callable[[str], None]) -> dict[str, Any]:
    precisions, skipped = _precisions(options)
    out: dict[str, Any] = {"skipped": skipped}
    for precision in precisions:
        epochs = max(2, min(options.epochs, 5))
        out[precision] = floor_summary(options, precision, 128, 400, 2, epochs, options.repetitions)
        s = out[precision]
        log(f"  floor {precision}: {s['s_per_epoch']:.3f} s/epoch, {s['gflop_per_s']:.0f} GFLOP/s")
    return out


def part_vaekit(options: BenchOptions, log: Callable[[str], None]) -> dict[str, Any]:
    precisions, skipped = _precisions(options)
    out: dict[str, Any] = {"skipped": skipped}
    work = Path(options.work_dir)
    for precision in precisions:
        reps = []
        for rep in range(options.repetitions):
            run_dir = work / f"vaekit-{precision}-{rep}"
            seed = options.seed + rep  # as the seed and plain parts: one seed per repetition
            reps.append(
                run_vaekit_train(options, run_dir, precision, 128, 400, 2, options.epochs, seed)
            )
        out[precision] = summarize(reps, _examples(options))
        out[precision]["wall_per_run"] = statistics.median(r["wall"] for r in reps)
        out[precision]["skipped_steps"] = sum(r["skipped"] for r in reps)
        _log_line(log, f"vaekit train {precision}", out[precision])
    return out


def part_pythae(options: BenchOptions, log: Callable[[str], None]) -> dict[str, Any]:
    python = Path(options.pythae_python)
    if not python.exists():
        note = f"pythae not measured: no interpreter at {python} (see BENCHMARKS.md)"
        log(f"  {note}")
        return {"skipped": note}
    import numpy as np

    from vaekit.data import load_split

    train = load_split("mnist", "train", options.data_dir, False).subset(options.limit)
    driver = Path(__file__).with_name("pythae_driver.py")
    reps = []
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "train.npy"
        np.save(images, train.images[:, 0].numpy())
        for rep in range(options.repetitions):
            command = [str(python), str(driver), "--images", str(images)]
            command += ["--epochs", str(options.epochs), "--seed", str(options.seed + rep)]
            env = {"OMP_NUM_THREADS": str(options.threads)} if options.threads else None
            done = run_process(command, env)
            reps.append(done.record | {"peak_rss_mib": done.peak_rss_mib})
    summary = summarize(reps, _examples(options))
    summary["torch"] = reps[0].get("torch")
    summary["loss_note"] = "pythae's epoch loss: the mean over batches of the per-sample loss"
    _log_line(log, "pythae", summary)
    return summary


def part_eval(options: BenchOptions, log: Callable[[str], None]) -> dict[str, Any]:
    precisions, skipped = _precisions(options)
    work = Path(options.work_dir)
    run_dir = work / "vaekit-fp32-0"
    out: dict[str, Any] = {"skipped": skipped, "k": options.eval_k}
    if not (run_dir / "checkpoint.safetensors").exists():  # no trained model yet: make one
        run_vaekit_train(options, run_dir, "fp32", 128, 400, 2, options.epochs, options.seed)
    out["model"] = f"seed configuration after {options.epochs} epochs"
    for precision in precisions:
        spec = _base_spec(options) | {
            "run_dir": str(run_dir),
            "precision": precision,
            "k": options.eval_k,
            "images": options.eval_images,
            "batch_size": options.eval_batch_size,
        }
        done = run_child("eval", spec)
        rec = done.record
        rate = rec["images"] * options.eval_k / rec["seconds"]
        out[precision] = {
            "images": rec["images"],
            "seconds": rec["seconds"],
            "images_x_k_per_s": rate,
            "nll": rec["nll"],
            "seconds_for_10000_images": 10_000 * options.eval_k / rate,
            "peak_rss_mib": done.peak_rss_mib,
        }
        log(
            f"  eval {precision}: {rate:,.0f} images x k per s "
            f"(10,000 images, k={options.eval_k}: {10_000 * options.eval_k / rate:.0f} s)"
        )
    return out


def part_scaling(options: BenchOptions, log: Callable[[str], None]) -> dict[str, Any]:
    """Time per epoch, floor and final loss as one size grows, the others at the seed's."""
    work = Path(options.work_dir)
    tables: dict[str, list[dict[str, Any]]] = {}
    axes = {
        "batch_size": options.batch_sizes,
        "hidden": options.hidden_sizes,
        "latent": options.latent_sizes,
    }
    for axis, values in axes.items():
        rows = []
        for value in values:
            sizes = {"batch": 128, "hidden": 400, "latent": 2}
            sizes["batch" if axis == "batch_size" else axis] = value
            run_dir = work / f"scaling-{axis}-{value}"
            run = run_vaekit_train(
                options, run_dir, "fp32", epochs=options.scaling_epochs, seed=options.seed, **sizes
            )
            timed = summarize([run], _examples(options))
            floor = floor_summary(options, "fp32", epochs=1, repetitions=1, **sizes)
            row = {
                axis: value,
                "s_per_epoch": timed["s_per_epoch"],
                "floor_s_per_epoch": floor["s_per_epoch"],
                "gflop_per_epoch": floor["gflop_per_epoch"],
                "gflop_per_s": floor["gflop_per_epoch"] / timed["s_per_epoch"],
                "final_loss": run["losses"][-1],
                "final_test_loss": run["test_losses"][-1],
                "peak_rss_mib": run["peak_rss_mib"],
            }
            rows.append(row)
            log(
                f"  {axis}={value}: {row['s_per_epoch']:.3f} s/epoch "
                f"(floor {row['floor_s_per_epoch']:.3f}), loss {row['final_loss']:.2f}"
            )
        tables[axis] = rows
    return {"epochs": options.scaling_epochs, "precision": "fp32", "tables": tables}


PART_FUNCTIONS = {
    "seed": part_seed,
    "plain": part_plain,
    "graphed": part_graphed,
    "floor": part_floor,
    "vaekit": part_vaekit,
    "pythae": part_pythae,
    "eval": part_eval,
    "scaling": part_scaling,
}


# ------------------------------------------------------------------ the whole run


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = next(line for line in text.splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": model,
        "cores": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx": "amx_bf16" in flags,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average_at_start": os.getloadavg(),
    }
    return info


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """Speed-ups against the seed notebook, distance to the floor, against pythae and plain."""
    out: dict[str, Any] = {}
    seed = results.get("seed", {}).get("s_per_epoch")
    pythae = results.get("pythae", {}).get("s_per_epoch")
    plain = results.get("plain", {})
    floors = results.get("floor", {})
    for precision, summary in results.get("vaekit", {}).items():
        if precision == "skipped":
            continue
        s = summary["s_per_epoch"]
        row: dict[str, Any] = {}
        if seed:
            row["speedup_vs_seed"] = seed / s
        floor = floors.get(precision)
        if floor:
            row["times_floor"] = s / floor["s_per_epoch"]
        if "fp32" in floors:
            row["times_fp32_floor"] = s / floors["fp32"]["s_per_epoch"]
        if pythae:
            row["speedup_vs_pythae"] = pythae / s
        if plain.get("final_loss"):
            row["loss_vs_plain"] = summary["final_loss"] / plain["final_loss"] - 1
        fp32 = results["vaekit"].get("fp32")
        if fp32 and precision != "fp32":
            row["loss_vs_fp32"] = summary["final_loss"] / fp32["final_loss"] - 1
        out[precision] = row
    if seed and pythae:
        out["pythae_speedup_vs_seed"] = seed / pythae
    if seed and plain.get("s_per_epoch"):
        out["plain_speedup_vs_seed"] = seed / plain["s_per_epoch"]
    graphed = results.get("graphed", {}).get("s_per_epoch")
    if seed and graphed:
        out["graphed_speedup_vs_seed"] = seed / graphed
    return out


def run(
    options: BenchOptions,
    log: Callable[[str], None] = print,
    after_part: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Measure every part in `options.parts`, in order; returns the JSON-ready report.

    `after_part` gets the report as it stands after each part (ratios of what is measured
    so far), so a run cut short by a time limit still leaves its finished parts behind.
    """
    unknown = set(options.parts) - set(PARTS)
    if unknown:
        from vaekit.errors import ConfigError

        raise ConfigError(f"unknown bench part(s) {', '.join(sorted(unknown))}; known: {PARTS}")
    with tempfile.TemporaryDirectory(prefix="vaekit-bench-") as tmp:
        options.work_dir = options.work_dir or tmp
        Path(options.work_dir).mkdir(parents=True, exist_ok=True)
        report: dict[str, Any] = {"machine": machine(), "options": asdict(options)}
        report["command"] = "vaekit " + " ".join(sys.argv[1:]) if sys.argv[1:] else None
        report["machine"]["load_by_part"] = loads = {}
        report["results"] = results = {}
        report["failures"] = failures = {}
        started = time.perf_counter()
        for name in PARTS:  # a fixed order: the eval part reuses the fp32 training's model
            if name not in options.parts:
                continue
            log(f"[{name}]")
            before = os.getloadavg()[0]
            try:
                results[name] = PART_FUNCTIONS[name](options, log)
            except RuntimeError as error:  # a child failed: report it, measure the rest
                failures[name] = str(error)
                log(f"  {name} failed: {error}")
            # 1-minute load averages around the part: other jobs on the machine show here
            loads[name] = [before, os.getloadavg()[0]]
            report["ratios"] = ratios(results)
            report["seconds"] = time.perf_counter() - started
            report["machine"]["load_average_at_end"] = os.getloadavg()
            if after_part:
                after_part(report)
    return report


def write(report: dict[str, Any], json_path: Path | None, markdown_path: Path | None) -> list[Path]:
    """Save the report as JSON and/or Markdown; returns the paths written."""
    from vaekit.bench.tables import markdown

    written = []
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        written.append(json_path)
    if markdown_path:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(markdown(report) + "\n")
        written.append(markdown_path)
    return written


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "child":
    _child_main(sys.argv[2], sys.argv[3])
