"""Named run configurations shipped with the package: `vaekit train --preset NAME`.

Each preset is a JSON file beside this module, in the same format a run folder's
config.json has (unset options keep their defaults) plus an "_about" line;
flags given with --preset override it as they override --config.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from vaekit.config import RunConfig
from vaekit.errors import ConfigError


def names() -> list[str]:
    """The preset names, sorted."""
    files = resources.files(__name__).iterdir()
    return sorted(f.name.removesuffix(".json") for f in files if f.name.endswith(".json"))


def _raw(name: str) -> dict[str, Any]:
    if name not in names():
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(names())}")
    return json.loads((resources.files(__name__) / f"{name}.json").read_text())


def about(name: str) -> str:
    """The preset's one-line description."""
    return _raw(name).get("_about", "")


def load(name: str) -> RunConfig:
    """The preset called `name` as a validated RunConfig."""
    raw = _raw(name)
    raw.pop("_about", None)
    return RunConfig.from_dict(raw)
