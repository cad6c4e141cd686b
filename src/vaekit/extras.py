"""Optional packages, imported only by the module that needs them.

`require` turns a missing one into a one-line error that names the pip extra
which installs it, instead of a traceback from deep inside a logger or exporter.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from vaekit.errors import ConfigError


class MissingExtra(ConfigError):
    """An optional package is not installed; the message says which extra brings it."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import `module`, or raise MissingExtra: "`what` needs ...: pip install 'vaekit[extra]'"."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(
            f"{what} needs the {module.split('.')[0]} package: pip install 'vaekit[{extra}]'"
        ) from None
