"""Field helpers shared by every config section: declaration, coercion, value checks.

Each field carries its help text, CLI flag and choices in its metadata, so the
command line (`vaekit.config.flags`) is generated from the dataclasses and cannot
drift from them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import Field, field, fields
from typing import Any

from vaekit.errors import ConfigError

# where 0 means "off"; seeds take any integer
ZERO_ALLOWED = {"warmup_epochs", "free_bits", "validation", "gmm_components"}


def opt(
    default: Any,
    help: str,
    flag: str | None = None,
    choices: Iterable[str] | None = None,
    aliases: tuple[str, ...] = (),
) -> Any:
    """A config field: its default, help text, flag name (else the field's) and choices.

    `choices` may be a `Registry`: it is read when a value is checked, so names
    declared after this class was defined (model families) count too.
    """
    meta = {"help": help, "flag": flag, "choices": choices, "aliases": aliases}
    return field(default=default, metadata=meta)


def flag_name(f: Field) -> str:
    return "--" + (f.metadata.get("flag") or f.name).replace("_", "-")


def check_values(section: Any) -> None:
    """Choices, positive sizes and finite floats for one dataclass; None means unset."""
    for f in fields(section):
        value = getattr(section, f.name)
        choices = f.metadata.get("choices")
        if choices and value is not None and value not in choices:
            raise ConfigError(f"{f.name} must be one of {', '.join(choices)}; got {value!r}")
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if is_number and f.name in ZERO_ALLOWED and value < 0:
            raise ConfigError(f"{f.name} must be >= 0; got {value}")
        if is_number and f.name not in ZERO_ALLOWED | {"seed"} and not value > 0:
            raise ConfigError(f"{f.name} must be > 0; got {value}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{f.name} must be finite; got {value}")


def reject_unknown(raw: dict[str, Any], known: Iterable[str], where: str) -> None:
    known = set(known)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) in {where}: {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )


def build_section(section_cls: type, raw: Any, name: str) -> Any:
    """One section's dataclass from a mapping: unknown keys refused, values coerced.

    Fields with init=False (a model family's name) are accepted as keys but not passed.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"config section {name!r} must be a mapping")
    reject_unknown(raw, (f.name for f in fields(section_cls)), name)
    values = {}
    for f in fields(section_cls):
        if f.init and f.name in raw:
            values[f.name] = coerce(f, raw[f.name], f"{name}.{f.name}")
    return section_cls(**values)


def _declared_type(f: Field) -> str:
    return f.type if isinstance(f.type, str) else f.type.__name__


def is_bool(f: Field) -> bool:
    return _declared_type(f) == "bool"


def coerce(f: Field, value: Any, where: str) -> Any:
    """Convert a JSON/TOML/CLI value to the field's declared type, or raise ConfigError."""
    declared = _declared_type(f)
    optional = "None" in declared
    if value is None or (optional and value in ("", "none", "None")):
        if optional:
            return None
        raise ConfigError(f"{where} must not be empty")
    base = declared.replace("| None", "").strip()
    try:
        return _convert(base, value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be {base}; got {value!r}") from None


def _convert(base: str, value: Any) -> Any:
    if base == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError
    if base == "int":
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return int(value)
    if base == "float":
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    if not isinstance(value, str):
        raise ValueError
    return value
