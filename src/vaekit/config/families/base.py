"""What every model family's config has, and how a family's class is found by name.

A family is a `ModelConfig` subclass decorated with `@model_family`: that declares
its name in `registry.MODEL`, which the config validation, the command line and
the network registry (`vaekit.models.register`) all read.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from typing import Any, ClassVar

from vaekit.config.fields import build_section, check_values, coerce, opt
from vaekit.config.registry import LIKELIHOOD, MODEL
from vaekit.errors import ConfigError

NAME_HELP = "model architecture (see `vaekit models`)"


def family_name(name: str) -> Any:
    """The `name` field of a family: fixed by its class, so not an __init__ argument.

    No `choices`: an unknown name is reported by `family_class`, listing the models.
    """
    meta = {"help": NAME_HELP, "flag": "model", "choices": None, "aliases": ()}
    return field(default=name, init=False, metadata=meta)


@dataclass
class ModelConfig:
    """The fields every model family has; each family's subclass adds its own."""

    # The objectives (`registry.OBJECTIVE`) this family's outputs can be scored by.
    objectives: ClassVar[tuple[str, ...]] = ("elbo", "iwae")

    name: str = family_name("")
    likelihood: str = opt(
        "bernoulli",
        "p(x|z): bernoulli (the seed), gaussian (fixed --sigma), gaussian-learned (per-pixel "
        "variance, floor --sigma), continuous-bernoulli, or mixed (tables and vectors: Gaussian "
        "with learned variance for numeric columns, categorical for the rest)",
        choices=LIKELIHOOD,
    )
    sigma: float = opt(0.1, "Gaussian likelihood: its fixed sigma, or the learned sigma's floor")

    def __post_init__(self) -> None:
        if type(self) is ModelConfig:
            raise TypeError(
                "ModelConfig is the families' base: use a family's class (MLPConfig, ...) "
                "or model_config(name, ...)"
            )

    def validate(self) -> None:
        """Known name matching this class, choices, positive sizes; families add their rules."""
        MODEL.check(self.name)
        if MODEL.spec(self.name) is not type(self):
            raise ConfigError(
                f"model name {self.name!r} does not match {type(self).__name__}; "
                f"build it with model_config({self.name!r}, ...)"
            )
        check_values(self)

    def starts_from(self) -> str | None:
        """A run whose weights the network takes before training (a second stage), or None."""
        return None


def model_family(cls: type[ModelConfig]) -> type[ModelConfig]:
    """Class decorator: declare a family under its `name` default."""
    MODEL.declare(cls.name, cls)
    return cls


def family_class(name: str) -> type[ModelConfig]:
    """The config class of family `name` (ConfigError naming the known ones)."""
    return MODEL.spec(name)


def family_fields(name: str) -> tuple[str, ...]:
    """The keys a family's model section may hold, `name` included."""
    return tuple(f.name for f in fields(family_class(name)))


def model_fields() -> dict[str, dict[str, Field]]:
    """field name -> {family: its Field}, over every family, in first-declared order."""
    out: dict[str, dict[str, Field]] = {}
    for family in MODEL:
        for f in fields(family_class(family)):
            out.setdefault(f.name, {})[family] = f
    return out


def foreign_fields(name: str, keys: list[str]) -> list[str]:
    """The keys that are another family's fields but not family `name`'s."""
    own, every = set(family_fields(name)), model_fields()
    return [key for key in keys if key in every and key not in own]


def not_applicable(keys: list[str], family: str, shown: list[str] | None = None) -> ConfigError:
    """The error for fields another family has: '--groups does not apply to model mlp'.

    `shown` spells the keys as the user wrote them (flags, or section.key).
    """
    shown = shown or keys
    if len(keys) == 1:
        others = ", ".join(model_fields()[keys[0]])
        return ConfigError(f"{shown[0]} does not apply to model {family} (only to {others})")
    return ConfigError(f"{', '.join(shown)} do not apply to model {family}")


def build_model_config(raw: Any, default: str) -> ModelConfig:
    """The model section as its family's class, chosen by raw["name"] (else `default`)."""
    if not isinstance(raw, dict):
        raise ConfigError("config section 'model' must be a mapping")
    name_field = next(f for f in fields(ModelConfig) if f.name == "name")
    name = coerce(name_field, raw.get("name", default), "model.name")
    cls = family_class(name)
    foreign = foreign_fields(name, sorted(raw))
    if foreign:
        raise not_applicable(foreign, name, [f"model.{key}" for key in foreign])
    return build_section(cls, raw, "model")


def model_config(name: str, **values: Any) -> ModelConfig:
    """Family `name`'s config with `values` set, validated: the Python API's shortcut."""
    config = build_model_config({"name": name, **values}, name)
    config.validate()
    return config
