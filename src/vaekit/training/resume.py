"""Resume policy: which options a stopped run may change, and its stored config."""

from __future__ import annotations

from typing import Any

from vaekit import checkpoint
from vaekit.config import RunConfig, section_of
from vaekit.errors import ConfigError
from vaekit.runfolder import RunFolder

# Options that may change when a run is resumed; the rest define the run.
RESUMABLE_OVERRIDES = {
    "epochs",
    "device",
    "pictures",
    "plots",
    "data_dir",
    "download",
    "eval_batch_size",
    "keep_every",
    "threads",  # may change the last digits: the resume line says so
    "tracking",  # experiment trackers watch a run; they do not define it
    "tracking_uri",
}


def resume_config(
    folder: RunFolder, overrides: dict[str, Any]
) -> tuple[RunConfig, checkpoint.Checkpoint | None]:
    """The stored config of a run with only the options allowed on resume replaced, and
    its checkpoint; None for a run stopped before its first checkpoint (it has only its
    config.json), which then starts afresh from that config."""
    ckpt = None
    if not folder.holds_run() and folder.config_path.is_file():
        raw = RunConfig.from_dict(folder.read_config()).to_dict()
    else:
        ckpt = checkpoint.load(folder.require_run().checkpoint)
        raw = ckpt.config.to_dict()
    for name, value in overrides.items():
        section = section_of(raw, name)  # ConfigError for a field the run's model lacks
        if name not in RESUMABLE_OVERRIDES and raw[section][name] != value:
            raise ConfigError(f"--{name.replace('_', '-')} cannot change when resuming a run")
        raw[section][name] = value
    return RunConfig.from_dict(raw), ckpt
