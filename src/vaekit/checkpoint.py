"""Checkpoints that are safe to load and safe to write.

One safetensors file: tensors (weights, optimizer moments, RNG state) plus a
JSON header (config, progress, format version). Loading never unpickles, so a
file cannot run code; writing goes to a temporary file, is fsynced and renamed,
so a crash mid-write leaves the previous checkpoint intact.

Format versions: 2 stores the config with only its model family's fields; 1 (the
shipped pretrained files, older run folders) stored one flat model section with every
family's fields, and is migrated on load (`vaekit.config.migrate`). A run on a table
adds the key `data_transform` (its `data.tables.TableTransform` as JSON: column order,
means, standard deviations, categories), which every later command applies.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from vaekit import files, runfolder
from vaekit.config import RunConfig, migrate
from vaekit.errors import CheckpointError, VaekitError

FORMAT = "vaekit-checkpoint"
FORMAT_VERSION = 2
# version -> what brings its config dict to today's layout
CONFIG_MIGRATIONS: dict[str, Callable[[Any], Any]] = {
    "1": migrate.v1_to_v2,
    str(FORMAT_VERSION): lambda raw: raw,
}
FILENAME = runfolder.CHECKPOINT


@dataclass
class Checkpoint:
    """Everything needed to rebuild a model and, optionally, continue its training."""

    config: RunConfig
    image_shape: tuple[int, int, int]
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None = None
    rng_state: dict[str, torch.Tensor] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)  # epoch, step, ...
    data_transform: dict[str, Any] | None = None  # a table's transform (TableTransform.to_dict)
    # the objective's own module and optimiser (FactorVAE's discriminator), for a resume
    companion_state: dict[str, Any] | None = None


def resolve_path(path: str | Path) -> Path:
    """Accept a run folder or the checkpoint file itself."""
    return runfolder.checkpoint_file(path)


def save(ckpt: Checkpoint, path: str | Path) -> Path:
    path = resolve_path(path)
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in ckpt.model_state.items()}
    tensors |= {f"rng/{k}": v.cpu().contiguous() for k, v in ckpt.rng_state.items()}
    groups = None
    if ckpt.optimizer_state is not None:
        for index, state in ckpt.optimizer_state["state"].items():
            for key, value in state.items():
                tensors[f"optim/{index}/{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        groups = ckpt.optimizer_state["param_groups"]
    companion_groups = None
    if ckpt.companion_state is not None:
        companion_groups = _companion_tensors(ckpt.companion_state, tensors)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": ckpt.config.to_json(),
        "image_shape": json.dumps(list(ckpt.image_shape)),
        "progress": json.dumps(ckpt.progress),
        "optimizer_groups": json.dumps(groups),
    }
    if ckpt.data_transform is not None:
        metadata["data_transform"] = json.dumps(ckpt.data_transform)
    if companion_groups is not None:
        metadata["companion_optimizer_groups"] = json.dumps(companion_groups)
    try:
        files.write_atomic(path, save_tensors(tensors, metadata=metadata))
    except OSError as exc:
        reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror
        raise CheckpointError(
            f"cannot write checkpoint {path}: {reason}; the previous checkpoint is kept"
        ) from None
    files.remove_stale_temporaries(path)
    return path


def load(path: str | Path) -> Checkpoint:
    path = resolve_path(path)
    payload = _read_file(path)
    metadata = _read_metadata(payload, path)
    try:
        tensors = load_tensors(payload)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is corrupt: {exc}") from None
    try:
        raw = CONFIG_MIGRATIONS[metadata["format_version"]](json.loads(metadata["config"]))
        config = RunConfig.from_dict(raw)
        image_shape = json.loads(metadata["image_shape"])
        if not (
            isinstance(image_shape, list)
            and len(image_shape) == 3
            and all(type(d) is int and d > 0 for d in image_shape)
        ):
            raise ValueError(f"image_shape {image_shape!r} is not 3 positive sizes")
        image_shape = tuple(image_shape)
        progress = _progress(json.loads(metadata["progress"]))
        groups = json.loads(metadata["optimizer_groups"])
        if groups is not None and not (
            isinstance(groups, list) and all(isinstance(g, dict) for g in groups)
        ):
            raise ValueError(f"optimizer_groups {groups!r} is not a list of mappings")
        transform = json.loads(metadata.get("data_transform", "null"))
        if transform is not None and not isinstance(transform, dict):
            raise ValueError("data_transform is not a mapping")
    except (KeyError, ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path} has a damaged header ({exc})") from None
    except VaekitError as exc:
        raise CheckpointError(f"{path} holds an invalid config: {exc}") from None
    sections: dict[str, dict[str, torch.Tensor]] = {
        "model": {},
        "rng": {},
        "optim": {},
        "companion": {},
        "companion_optim": {},
    }
    for key, value in tensors.items():
        section, _, name = key.partition("/")
        if section not in sections:
            raise CheckpointError(f"{path} has an unexpected tensor {key!r}")
        sections[section][name] = value
    optimizer_state = _optimizer_state(sections["optim"], groups, path)
    return Checkpoint(
        config,
        image_shape,
        sections["model"],
        optimizer_state,
        sections["rng"],
        progress,
        transform,
        _companion_state(sections, metadata, path),
    )  # type: ignore[arg-type]


def _read_file(path: Path) -> bytes:
    """The file's bytes; each way of failing is one CheckpointError line."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    except ValueError:  # what open() raises for a path with a NUL byte in it
        raise CheckpointError(
            f"no checkpoint at {str(path)!r}: a path cannot hold a NUL byte"
        ) from None


def _companion_state(
    sections: dict[str, dict[str, torch.Tensor]], metadata: dict[str, str], path: Path
) -> dict[str, Any] | None:
    """The objective's own module and optimiser (FactorVAE's discriminator), if saved."""
    if "companion_optimizer_groups" not in metadata:
        return None
    groups = json.loads(metadata["companion_optimizer_groups"])
    optim = _optimizer_state(sections["companion_optim"], groups, path)
    return {"module": sections["companion"], "optimizer": optim}


def _companion_tensors(state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Any:
    """Add the companion's module and optimiser tensors to `tensors`; its param groups."""
    for key, value in state["module"].items():
        tensors[f"companion/{key}"] = value.detach().cpu().contiguous()
    for index, moments in state["optimizer"]["state"].items():
        for key, value in moments.items():
            tensor = torch.as_tensor(value).detach().cpu().contiguous()
            tensors[f"companion_optim/{index}/{key}"] = tensor
    return state["optimizer"]["param_groups"]


def _optimizer_state(
    tensors: dict[str, torch.Tensor], groups: Any, path: Path
) -> dict[str, Any] | None:
    """Adam's state dict from its `optim/<index>/<key>` tensors and param groups."""
    if groups is None:
        return None
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        index, _, key = name.partition("/")
        if not index.isdigit():
            raise CheckpointError(f"{path} has an unexpected tensor 'optim/{name}'")
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": groups}


def _progress(progress: Any) -> dict[str, Any]:
    """The progress entry, checked: a resume trusts its epoch, batch and running sums."""
    if not isinstance(progress, dict):
        raise ValueError(f"progress {progress!r} is not a mapping")
    for key in ("epoch", "batch"):
        if key in progress and not (type(progress[key]) is int and progress[key] >= 0):
            raise ValueError(f"progress {key} {progress[key]!r} is not a count")
    sums = progress.get("sums", {})
    if not (isinstance(sums, dict) and all(type(v) in (int, float) for v in sums.values())):
        raise ValueError(f"progress sums {sums!r} are not numbers")
    return progress


def _read_metadata(payload: bytes, path: Path) -> dict[str, str]:
    """Parse the safetensors JSON header by hand to give precise errors for foreign files."""
    if len(payload) < 8:
        raise CheckpointError(f"{path} is not a vaekit checkpoint (only {len(payload)} bytes)")
    size = int.from_bytes(payload[:8], "little")
    if size > len(payload) - 8:
        raise CheckpointError(f"{path} is not a vaekit checkpoint (not a safetensors file)")
    try:
        header = json.loads(payload[8 : 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(
            f"{path} is not a vaekit checkpoint (not a safetensors file)"
        ) from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict):
        metadata = {}
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a vaekit checkpoint (no vaekit format tag)")
    version = metadata.get("format_version")
    if not isinstance(version, str) or version not in CONFIG_MIGRATIONS:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}; "
            f"this vaekit reads version {FORMAT_VERSION} (and migrates older ones)"
        )
    return metadata
