"""Timing pythae's TrainingPipeline on the seed model, through `pythae_driver.py`.

pythae lives in its own virtual environment (vaekit never depends on it), so the
driver runs under that interpreter, on the bench's own device: the "vs pythae"
ratio then compares two pipelines on one device, never a GPU with a CPU.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaekit.bench.options import BenchOptions, bench_device, child_env, examples
from vaekit.bench.processes import run_process
from vaekit.bench.summary import log_line, summarize

DRIVER = Path(__file__).with_name("pythae_driver.py")


def driver_command(
    options: BenchOptions, python: Path, images: Path, device: str, seed: int
) -> list[str]:
    """The driver's command line for one repetition."""
    command = [str(python), str(DRIVER), "--images", str(images)]
    command += ["--epochs", str(options.epochs), "--seed", str(seed), "--device", device]
    return command


def _save_images(options: BenchOptions, path: Path) -> None:
    """The training images the other parts train on, as the uint8 array the driver reads."""
    import numpy as np

    from vaekit.data import load_split

    train = load_split("mnist", "train", options.data_dir, False).subset(options.limit)
    np.save(path, train.images[:, 0].numpy())


def part_pythae(options: BenchOptions, log: Callable[[str], None]) -> dict[str, Any]:
    """pythae on the same model, data, batch and device; skipped without its interpreter."""
    python = Path(options.pythae_python)
    if not python.exists():
        note = f"pythae not measured: no interpreter at {python} (see BENCHMARKS.md)"
        log(f"  {note}")
        return {"skipped": note}
    device = bench_device(options)
    reps = []
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "train.npy"
        _save_images(options, images)
        for rep in range(options.repetitions):
            command = driver_command(options, python, images, device, options.seed + rep)
            done = run_process(command, child_env(options))
            reps.append(done.record | {"peak_rss_mib": done.peak_rss_mib})
    summary = summarize(reps, examples(options))
    summary["torch"] = reps[0].get("torch")
    summary["device"] = reps[0].get("device", device)
    summary["loss_note"] = "pythae's epoch loss: the mean over batches of the per-sample loss"
    log_line(log, f"pythae ({summary['device']})", summary)
    return summary
