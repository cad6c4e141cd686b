"""The `vaekit train` options, described from the config fields (no argparse, no torch).

Model options are the union over families: `--groups` exists because the hvae
family has a `groups` field, and its help names the families it applies to.
`vaekit.cli` turns each `Flag` into an argparse argument.
"""

from __future__ import annotations

from dataclasses import Field, dataclass
from typing import Any

from vaekit.config.families import DEFAULT_FAMILY, model_fields
from vaekit.config.fields import coerce, flag_name, is_bool
from vaekit.config.registry import MODEL
from vaekit.config.run import config_fields


@dataclass(frozen=True)
class Flag:
    """One command-line option: where its value goes and how it is shown."""

    section: str
    field: Field
    names: tuple[str, ...]  # the flag and its aliases, e.g. ("--dataset", "--data")
    help: str
    choices: tuple[str, ...] | None
    families: tuple[str, ...] | None  # model options only: the families that have it

    @property
    def dest(self) -> str:
        return f"cfg:{self.section}:{self.field.name}"

    @property
    def boolean(self) -> bool:
        return is_bool(self.field)

    def coerce(self, value: Any) -> Any:
        """A command-line string as the field's type, errors naming the flag."""
        return coerce(self.field, value, self.names[0])


def config_flags() -> list[Flag]:
    """Every config option of `vaekit train`, grouped by section in declaration order."""
    by_model_field = model_fields()
    out = []
    for section, f in config_fields():
        names = (flag_name(f), *f.metadata.get("aliases", ()))
        choices = f.metadata.get("choices")
        choices = tuple(choices) if choices else None
        if section != "model":
            help_text = f"{f.metadata['help']} (default: {f.default})"
            out.append(Flag(section, f, names, help_text, choices, None))
            continue
        per_family = by_model_field[f.name]
        families = None if len(per_family) == len(MODEL) else tuple(per_family)
        if f.name == "name":  # each family's own name is its default: show the run's default
            names_list = ", ".join(MODEL.names())
            help_text = f"model architecture: {names_list} (default: {DEFAULT_FAMILY})"
        else:
            help_text = _model_help(per_family)
        out.append(Flag(section, f, names, help_text, choices, families))
    return out


def _model_help(per_family: dict[str, Field]) -> str:
    """One help line for a model field: its meaning per family, then its default(s).

    A field every family has with one meaning reads as any other option's help;
    otherwise families sharing a meaning are listed before it: "hvae: number of groups".
    """
    helps = _grouped(per_family, lambda f: f.metadata["help"])
    if len(helps) == 1 and len(per_family) == len(MODEL):
        text = next(iter(helps))
    else:
        text = "; ".join(f"{', '.join(names)}: {h}" for h, names in helps.items())
    defaults = _grouped(per_family, lambda f: f.default)
    if len(defaults) == 1:
        return f"{text} (default: {next(iter(defaults))})"
    shown = "; ".join(f"{', '.join(names)}: {value}" for value, names in defaults.items())
    return f"{text} (default: {shown})"


def _grouped(per_family: dict[str, Field], key: Any) -> dict[Any, list[str]]:
    """{key(field): [families with that value]}, in family order."""
    out: dict[Any, list[str]] = {}
    for family, f in per_family.items():
        out.setdefault(key(f), []).append(family)
    return out
