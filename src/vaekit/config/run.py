"""A run's whole configuration, saved as plain JSON with every run.

The model section is the run's family's class (`vaekit.config.families`), chosen by
`model.name`; it holds that family's fields and no others.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vaekit.config import migrate
from vaekit.config.families import (
    DEFAULT_FAMILY,
    MLPConfig,
    ModelConfig,
    build_model_config,
    family_fields,
    foreign_fields,
    model_fields,
    not_applicable,
)
from vaekit.config.fields import build_section, flag_name, reject_unknown
from vaekit.config.sections import DataConfig, ObjectiveConfig, TrainConfig
from vaekit.errors import ConfigError


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=MLPConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        """Build a config from nested dicts, rejecting unknown keys and wrong types."""
        if not isinstance(raw, dict):
            raise ConfigError(f"a config must be a mapping, got {type(raw).__name__}")
        reject_unknown(raw, (f.name for f in fields(cls)), "config")
        sections = {}
        for f in fields(cls):
            if f.name == "model":
                sections[f.name] = build_model_config(raw.get(f.name, {}), DEFAULT_FAMILY)
            else:
                section_cls = f.default_factory  # type: ignore[misc]
                sections[f.name] = build_section(section_cls, raw.get(f.name, {}), f.name)
        config = cls(**sections)
        config.validate()
        return config

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read a `.json` or `.toml` config file; a config.json of layout 1 is migrated."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start})") from None
        try:
            raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path} is not valid {path.suffix[1:] or 'JSON'}: {exc}") from None
        if migrate.is_v1_layout(raw):  # a run folder's config.json from before layout 2
            raw = migrate.v1_to_v2(raw)
        return cls.from_dict(raw)

    def save(self, path: str | Path) -> None:
        if Path(path).suffix == ".toml":
            raise ConfigError(f"{path}: configs are saved as JSON; use a .json path")
        Path(path).write_text(self.to_json())

    def validate(self) -> None:
        """Check values that types alone cannot: positive sizes, known names, combinations."""
        for section in (self.data, self.model, self.objective, self.train):
            section.validate()
        if self.objective.objective not in self.model.objectives:
            raise ConfigError(
                f"model {self.model.name} is trained with --objective "
                f"{' or '.join(self.model.objectives)}; got {self.objective.objective}"
            )


def config_fields() -> list[tuple[str, Field]]:
    """(section name, dataclass field) for every option, in declaration order.

    The model section's are the union over families (one Field per name; see
    `vaekit.config.flags` for which families each applies to).
    """
    out: list[tuple[str, Field]] = []
    for section in fields(RunConfig):
        if section.name == "model":
            out += [("model", next(iter(by.values()))) for by in model_fields().values()]
        else:
            out += [(section.name, f) for f in fields(section.default_factory)]  # type: ignore[arg-type]
    return out


def apply_overrides(config: RunConfig, overrides: dict[tuple[str, str], Any]) -> RunConfig:
    """Return a copy of `config` with {(section, field): value} replaced, validated.

    A new model family (`("model", "name")`) keeps the fields of the old one it has
    too; an override of a field the family lacks is an error naming its flag.
    """
    raw = config.to_dict()
    model: dict[str, Any] = {}
    for (section, name), value in overrides.items():
        if section not in raw:
            raise ConfigError(f"unknown config section {section!r}")
        if section == "model":
            model[name] = value
        else:
            raw[section][name] = value
    raw["model"] = _override_model(raw["model"], model)
    return RunConfig.from_dict(raw)


def _override_model(current: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    family = overrides.get("name", current["name"])
    if family == current["name"]:
        section = dict(current)
    else:
        build_model_config({"name": family}, DEFAULT_FAMILY)  # an unknown name fails here
        section = {k: v for k, v in current.items() if k in family_fields(family)}
    foreign = foreign_fields(family, list(overrides))
    if foreign:
        every = model_fields()
        flags = [flag_name(next(iter(every[key].values()))) for key in foreign]
        raise not_applicable(foreign, family, flags)
    return section | overrides | {"name": family}


def section_of(raw: dict[str, Any], name: str) -> str:
    """The section of a saved config that holds option `name` (ConfigError if none does)."""
    section = next((s for s in raw if isinstance(raw[s], dict) and name in raw[s]), None)
    if section is not None:
        return section
    flag = "--" + name.replace("_", "-")
    if name in model_fields():
        raise not_applicable([name], raw["model"]["name"], [flag])
    raise ConfigError(f"unknown option {flag}")
