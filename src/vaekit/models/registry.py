"""Networks by model family: each class registers against its family's config class.

The family names and their config classes are declared in `vaekit.config.families`
(torch-free, so the command line lists them without importing a network); the
registry refuses a network for a family that is not declared there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from vaekit.config import ModelConfig
from vaekit.config.registry import MODEL

MODELS: Mapping[str, type] = MODEL.implementations  # name -> network class, read-only


def register(config_class: type[ModelConfig]) -> Callable[[type], type]:
    """Class decorator: the network that family `config_class.name` builds."""
    name = config_class.name

    def add(cls: type) -> type:
        if MODEL.spec(name) is not config_class:
            raise ValueError(f"model {name!r} is declared with {MODEL.spec(name).__name__}")
        return MODEL.register(name, cls)

    return add
