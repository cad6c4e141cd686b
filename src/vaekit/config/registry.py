"""The one source of every name a config may choose: kind -> {name: implementation}.

Each `Registry` declares its names here (or, for model families, in the family's
config module under `vaekit.config.families`), so validation and the command line
can list them without importing torch. The module named by `implemented_by`
registers the object behind each name when it is imported, and refuses a name that
is not declared; `tests/test_config_registry.py` checks that the two agree exactly.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from types import MappingProxyType
from typing import Any

from vaekit.errors import ConfigError


class Registry:
    """Names of one kind of choice, in declaration order, and their implementations."""

    def __init__(
        self, kind: str, names: Iterable[str] = (), implemented_by: str | None = None
    ) -> None:
        self.kind = kind
        self.implemented_by = implemented_by  # a module path, only named: config imports it not
        self._declared: dict[str, Any] = {}
        self._implemented: dict[str, Any] = {}
        self.implementations = MappingProxyType(self._implemented)  # a live, read-only view
        for name in names:
            self.declare(name)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()!r})"

    def __contains__(self, name: object) -> bool:
        return name in self._declared

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._declared)

    def names(self) -> tuple[str, ...]:
        return tuple(self._declared)

    def declare(self, name: str, spec: Any = None) -> None:
        """Offer `name` as a choice; `spec` is what config needs to know about it."""
        if name in self._declared:
            raise ValueError(f"{self.kind} {name!r} declared twice")
        self._declared[name] = spec

    def spec(self, name: str) -> Any:
        self.check(name)
        return self._declared[name]

    def register(self, name: str, implementation: Any) -> Any:
        """Attach the object behind a declared name; returns it (usable as a decorator body)."""
        if name not in self._declared:
            raise ValueError(
                f"{self.kind} {name!r} is not declared in vaekit.config.registry "
                f"(declared: {', '.join(self._declared)}); declare it there first"
            )
        if name in self._implemented:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._implemented[name] = implementation
        return implementation

    def unknown(self, name: object) -> str:
        """The one-line message for a name that is not a choice, with the nearest one."""
        known = sorted(self)
        message = f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(known)}"
        near = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
        return f"{message}; did you mean {near[0]}?" if near else message

    def check(self, name: object) -> None:
        if name not in self._declared:
            raise ConfigError(self.unknown(name))

    def get(self, name: str) -> Any:
        """The implementation of `name`: ConfigError for an unknown name."""
        self.check(name)
        if name not in self._implemented:  # declared, but its module was never imported
            raise ConfigError(f"{self.kind} {name!r} has no implementation; import {self.where}")
        return self._implemented[name]

    @property
    def where(self) -> str:
        return self.implemented_by or "the module that implements it"

    def missing(self) -> tuple[str, ...]:
        """Declared names with no implementation (after importing `implemented_by`); none
        for a kind whose names are all there is (no `implemented_by`)."""
        if self.implemented_by is None:
            return ()
        return tuple(name for name in self._declared if name not in self._implemented)


# Model families: declared by their config classes (vaekit.config.families), networks in
# vaekit.models register against them.
MODEL = Registry("model", implemented_by="vaekit.models")
LIKELIHOOD = Registry(
    "likelihood",
    ("bernoulli", "gaussian", "gaussian-learned", "continuous-bernoulli", "mixed"),
    implemented_by="vaekit.likelihoods",
)
SCHEDULE = Registry(
    "schedule", ("constant", "iwae", "exponential"), implemented_by="vaekit.schedules"
)
OBJECTIVE = Registry(
    "objective",
    ("elbo", "iwae", "beta-tcvae", "factorvae", "vq"),
    implemented_by="vaekit.objectives",
)
# p(z) and q(z|x) of the one-group models: each name builds a module the model holds.
PRIOR = Registry("prior", ("normal", "vamp"), implemented_by="vaekit.models.latent")
FLOW = Registry("flow", ("none", "planar", "iaf"), implemented_by="vaekit.models.latent")
DATASET = Registry("dataset", ("mnist", "fashion-mnist", "sprites"), implemented_by="vaekit.data")
# The user's own data, written `KIND:PATH` (`folder:~/pictures`, `npy:x.npy`, `csv:t.csv`):
# images are read by vaekit.data.userdata, tables by vaekit.data.tables.
DATA_SOURCE = Registry("data source", ("folder", "npy", "csv"), implemented_by="vaekit.data")
PRECISION = Registry("precision", ("fp32", "bf16", "fp16"), implemented_by="vaekit.runtime")
# Names whose meaning lives in one function's branches, not in a table of objects.
CONDITION = Registry("condition", ("none", "label"))
DEVICE = Registry("device", ("auto", "cpu", "cuda"))
BINARIZE = Registry("binarisation protocol", ("none", "dynamic", "static"))
IMAGE_MODE = Registry("image mode", ("auto", "grey", "rgb"))
IMPUTE = Registry("imputation", ("none", "mean"))
RESIZE = Registry("resize", ("squash", "crop"))

ALL = (
    MODEL,
    LIKELIHOOD,
    SCHEDULE,
    OBJECTIVE,
    PRIOR,
    FLOW,
    DATASET,
    DATA_SOURCE,
    PRECISION,
    CONDITION,
    DEVICE,
    BINARIZE,
    IMAGE_MODE,
    IMPUTE,
    RESIZE,
)
