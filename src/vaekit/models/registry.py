"""Models by name: a dict filled by the `register` decorator, no if/else chains."""

from __future__ import annotations

from collections.abc import Callable

MODELS: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    def add(cls: type) -> type:
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        MODELS[name] = cls
        return cls

    return add
