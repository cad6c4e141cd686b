"""Report assembly: what the numbers were measured on, and the ratios between parts.

Ratios are recomputed from the results after every part, so a report cut short
still compares whatever it measured.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any


def _cpuinfo() -> tuple[str, str]:
    """The CPU's model name and its flags line (empty where /proc/cpuinfo is missing)."""
    model, flags = platform.processor() or platform.machine(), ""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return model, flags
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    flags = next((line for line in lines if line.startswith("flags")), "")
    return (names[0] if names else model), flags


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    model, flags = _cpuinfo()
    return {
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


def _vaekit_ratios(results: dict[str, Any], precision: str, s: float, loss: float) -> dict:
    """One `vaekit train` precision against the seed, the floors, pythae, plain and fp32."""
    seed = results.get("seed", {}).get("s_per_epoch")
    pythae = results.get("pythae", {}).get("s_per_epoch")
    plain = results.get("plain", {})
    floors = results.get("floor", {})
    row: dict[str, Any] = {}
    if seed:
        row["speedup_vs_seed"] = seed / s
    if floors.get(precision):
        row["times_floor"] = s / floors[precision]["s_per_epoch"]
    if "fp32" in floors:
        row["times_fp32_floor"] = s / floors["fp32"]["s_per_epoch"]
    if pythae:
        row["speedup_vs_pythae"] = pythae / s
    if plain.get("final_loss"):
        row["loss_vs_plain"] = loss / plain["final_loss"] - 1
    fp32 = results["vaekit"].get("fp32")
    if fp32 and precision != "fp32":
        row["loss_vs_fp32"] = loss / fp32["final_loss"] - 1
    return row


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """Speed-ups against the seed notebook, distance to the floor, against pythae and plain."""
    out: dict[str, Any] = {}
    for precision, summary in results.get("vaekit", {}).items():
        if precision != "skipped":
            s, loss = summary["s_per_epoch"], summary["final_loss"]
            out[precision] = _vaekit_ratios(results, precision, s, loss)
    seed = results.get("seed", {}).get("s_per_epoch")
    others = {
        "pythae_speedup_vs_seed": results.get("pythae", {}).get("s_per_epoch"),
        "plain_speedup_vs_seed": results.get("plain", {}).get("s_per_epoch"),
        "graphed_speedup_vs_seed": results.get("graphed", {}).get("s_per_epoch"),
    }
    for key, s in others.items():
        if seed and s:
            out[key] = seed / s
    return out
