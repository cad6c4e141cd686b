"""Tables and vectors as model inputs: `csv:PATH` and `npy:PATH` of a 2-D array.

A `TableTransform` turns a table's columns into one float vector per row and back:
numeric columns standardised with the mean and standard deviation of the training
rows, then every categorical column one-hot (its categories listed from every row of
the file, so the test split never meets an unknown one). It is fitted once, on the
training split (after `--classes`), saved in the checkpoint's header and applied by
every later command, so `score` and `encode` of new rows see the same scale, and
`sample` writes rows back in the original units and categories.

The vector's layout (numeric block first, then the one-hot blocks) is what the
`mixed` likelihood reads (`TableLayout`); models see the data as shape (1, 1, D).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vaekit.config import DataConfig
from vaekit.config.registry import DATA_SOURCE
from vaekit.data.classes import class_indices, parse_classes
from vaekit.data.tablefile import RawTable, npy_is_vectors, read_csv, read_vectors
from vaekit.data.userdata import split_rows
from vaekit.errors import DataError

NUMERIC, CATEGORICAL = "numeric", "categorical"


@dataclass(frozen=True)
class Column:
    """One input column: a numeric one's training mean and standard deviation (and
    whether it held whole numbers only, so samples are rounded), or a categorical
    one's categories in one-hot order and its most frequent training category."""

    name: str
    kind: str
    mean: float = 0.0
    std: float = 1.0
    integer: bool = False
    categories: tuple[str, ...] = ()
    fill: str = ""


@dataclass(frozen=True)
class TableTransform:
    """What turns a table's rows into vectors, and vectors back into rows."""

    columns: tuple[Column, ...]  # the file's order, the label column left out
    label_column: str | None = None
    label_names: tuple[str, ...] = ()
    impute: str = "none"
    source: str = "csv"  # csv or npy: what kind of file the columns came from

    @property
    def numeric(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.kind == NUMERIC)

    @property
    def categorical(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.kind == CATEGORICAL)

    @property
    def categorical_names(self) -> list[str]:
        return [c.name for c in self.categorical]

    @property
    def layout(self) -> tuple[int, tuple[int, ...]]:
        """(numeric columns, categories per categorical column): a `TableLayout`."""
        return len(self.numeric), tuple(len(c.categories) for c in self.categorical)

    @property
    def width(self) -> int:
        numeric, sizes = self.layout
        return numeric + sum(sizes)

    def vector_names(self) -> list[str]:
        """What each entry of the vector is: a column's name, or `column=category`."""
        names = [c.name for c in self.numeric]
        return names + [f"{c.name}={k}" for c in self.categorical for k in c.categories]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TableTransform:
        columns = tuple(
            Column(**{**c, "categories": tuple(c.get("categories", ()))}) for c in raw["columns"]
        )
        rest = {k: v for k, v in raw.items() if k != "columns"}
        return cls(columns, **{**rest, "label_names": tuple(raw.get("label_names", ()))})

    def encode(self, table: RawTable, rows: np.ndarray) -> np.ndarray:
        """Vectors (len(rows), width), float32, of the given rows of a table."""
        missing = [c.name for c in self.columns if c.name not in table.columns]
        if missing:
            raise DataError(
                f"{table.source} has no column {missing[0]!r}, which the model was trained "
                f"with (its columns: {', '.join(c.name for c in self.columns)})"
            )
        out = np.empty((len(rows), self.width), dtype=np.float32)
        for j, column in enumerate(self.numeric):
            out[:, j] = (self._numbers(table, column, rows) - column.mean) / column.std
        start = len(self.numeric)
        for column in self.categorical:
            codes = self._codes(table, column, rows)
            block = np.zeros((len(rows), len(column.categories)), dtype=np.float32)
            block[np.arange(len(rows)), codes] = 1
            out[:, start : start + len(column.categories)] = block
            start += len(column.categories)
        return out

    def _numbers(self, table: RawTable, column: Column, rows: np.ndarray) -> np.ndarray:
        name = column.name
        if not table.numeric(name):
            raise DataError(
                f"{table.source}: column {name!r} holds text, but the model read it as numbers"
            )
        values = table.columns[name][rows]
        bad = ~np.isfinite(values)
        if bad.any():
            if self.impute == "none":
                raise _missing(table, name, int(rows[np.flatnonzero(bad)[0]]))
            values = np.where(bad, column.mean, values)
        return values

    def _codes(self, table: RawTable, column: Column, rows: np.ndarray) -> np.ndarray:
        values = _as_text(table, column.name)[rows]
        if self.impute != "none":
            values = np.where(values == "", column.fill, values)
        index = {category: i for i, category in enumerate(column.categories)}
        codes = np.fromiter((index.get(v, -1) for v in values), np.int64, len(values))
        if (codes < 0).any():
            at = int(np.flatnonzero(codes < 0)[0])
            row = int(rows[at])
            if values[at] == "":
                raise _missing(table, column.name, row)
            raise DataError(
                f"{table.where(row)}, column {column.name!r}: category {str(values[at])!r} was not "
                f"in the training data (known: {', '.join(column.categories)})"
            )
        return codes

    def labels(self, table: RawTable, rows: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
        """Label codes of the rows and the names they index: the training labels first,
        then any new ones this table brings (scoring other data may meet new classes)."""
        if self.label_column is None or self.label_column not in table.columns:
            return np.zeros(len(rows), dtype=np.int64), ()
        values = _as_text(table, self.label_column)
        empty = np.flatnonzero(values[rows] == "")
        if len(empty):
            raise _missing(table, self.label_column, int(rows[empty[0]]))
        known = set(self.label_names)
        names = self.label_names + tuple(v for v in sorted_values(values) if v not in known)
        index = {name: i for i, name in enumerate(names)}
        return np.fromiter((index[v] for v in values[rows]), np.int64, len(rows)), names

    def decode(self, vectors: np.ndarray) -> dict[str, list]:
        """Rows back in the original units and categories, as {column: values} in the
        file's column order: numbers unstandardised (whole-number columns rounded),
        each one-hot block's largest entry as its category."""
        decoded: dict[str, list] = {}
        for j, column in enumerate(self.numeric):
            values = vectors[:, j].astype(np.float64) * column.std + column.mean
            # float32 vectors carry about 7 significant digits: print no more than that
            decoded[column.name] = (
                [int(v) for v in np.round(values)]
                if column.integer
                else [float(f"{v:.7g}") for v in values]
            )
        start = len(self.numeric)
        for column in self.categorical:
            size = len(column.categories)
            codes = vectors[:, start : start + size].argmax(axis=1)
            decoded[column.name] = [column.categories[i] for i in codes]
            start += size
        return {c.name: decoded[c.name] for c in self.columns}


def _missing(table: RawTable, name: str, row: int) -> DataError:
    shown = table.cell(row, name)
    what = "an empty cell" if shown == "" else f"no finite value ({shown!r})"
    return DataError(
        f"{table.where(row)}, column {name!r}: {what}; fill it, drop the row, or pass --impute mean"
    )


def _as_text(table: RawTable, name: str) -> np.ndarray:
    """A column as strings: text as read; numbers as they were written, where possible."""
    values = table.columns[name]
    if values.dtype.kind != "f":
        return values
    whole = np.isfinite(values) & (values == np.round(values))
    return np.array(
        [
            str(int(v)) if w else ("" if np.isnan(v) else repr(float(v)))
            for v, w in zip(values, whole, strict=True)
        ]
    )


def sorted_values(values: np.ndarray) -> tuple[str, ...]:
    """The distinct non-empty values, in numeric order when every one is a number."""
    unique = [v for v in np.unique(values).tolist() if v != ""]
    try:
        return tuple(sorted(unique, key=float))
    except ValueError:
        return tuple(unique)


def fit(
    table: RawTable,
    rows: np.ndarray,
    config: DataConfig,
    source: str = "csv",
) -> TableTransform:
    """The transform of a table, its statistics taken from `rows` (the training split)."""
    label, forced = config.label_column, set(_names(config.categorical))
    for name in [label, *forced]:
        if name is not None and name not in table.columns:
            raise DataError(
                f"{table.source} has no column {name!r} (its columns: {', '.join(table.names)})"
            )
    if len(rows) < 2:
        raise DataError(
            f"{table.source}: {len(rows)} training row(s); a table needs at least 2 to "
            "standardise its columns (and more for a useful model)"
        )
    columns = []
    for name in table.names:
        if name == label:
            continue
        if name in forced or not table.numeric(name):
            columns.append(_fit_categorical(table, name, rows))
        else:
            columns.append(_fit_numeric(table, name, rows))
    if not columns:
        raise DataError(f"{table.source}: no columns to model besides the label {label!r}")
    names = sorted_values(_as_text(table, label)) if label else ()
    return TableTransform(tuple(columns), label, names, config.impute, source)


def _fit_numeric(table: RawTable, name: str, rows: np.ndarray) -> Column:
    values = table.columns[name][rows]
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() == finite.max():
        raise DataError(
            f"{table.source}: column {name!r} is constant over the training rows (every value "
            f"is {finite[0]:g}); it carries nothing to model: drop it"
        )
    if finite.size < 2:
        raise DataError(f"{table.source}: column {name!r} has under 2 finite training values")
    integer = bool(np.all(finite == np.round(finite)))
    return Column(name, NUMERIC, float(finite.mean()), float(finite.std()), integer)


def _fit_categorical(table: RawTable, name: str, rows: np.ndarray) -> Column:
    values = _as_text(table, name)
    categories = sorted_values(values)
    if len(categories) < 2:
        only = f"every value is {categories[0]!r}" if categories else "every cell is empty"
        raise DataError(
            f"{table.source}: column {name!r} has one category ({only}); it carries nothing "
            "to model: drop it"
        )
    seen, counts = np.unique(values[rows][values[rows] != ""], return_counts=True)
    fill = str(seen[np.argmax(counts)]) if len(seen) else categories[0]
    return Column(name, CATEGORICAL, categories=categories, fill=fill)


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in text.split(",")] if text else []


class TableSplit(NamedTuple):
    """One split of a table: vectors (N, D) float32, label codes and their names, the
    file rows they came from, and the transform that made them."""

    vectors: np.ndarray
    labels: np.ndarray
    label_names: tuple[str, ...]
    rows: np.ndarray
    transform: TableTransform


def is_table(spec: str) -> bool:
    """`csv:PATH`, or `npy:PATH` of a 2-D array: data read as vectors, not images."""
    kind, _, path = spec.partition(":")
    return kind == "csv" or (kind == "npy" and bool(path) and npy_is_vectors(Path(path)))


def read_table(spec: str, config: DataConfig, transform: TableTransform | None = None) -> RawTable:
    """The file behind `csv:PATH` or `npy:PATH`, its label and categorical columns (the
    transform's, else those `config` names) read as text."""
    kind, _, path = spec.partition(":")
    if config.binarize != "none" or config.image_size or config.image_mode != "auto":
        raise DataError(
            f"{spec}: --binarize, --image-size, --image-mode and --resize apply to images, "
            "not tables"
        )
    if kind == "npy":
        return read_vectors(Path(path).expanduser())
    named = _names(config.categorical) if transform is None else transform.categorical_names
    label = config.label_column if transform is None else transform.label_column
    text = [*named, *([label] if label else [])]
    return read_csv(Path(path).expanduser(), text)


def load_table(
    spec: str, split: str, config: DataConfig, transform: TableTransform | None = None
) -> TableSplit:
    """One split ("train", "test" or "all") of a table, with `transform` or, when None,
    one fitted on the training split's rows of `config.classes`, less the last
    `config.validation` (the validation rows, see `splits.hold_out`)."""
    table = read_table(spec, config, transform)
    kind = spec.partition(":")[0]
    shuffle = kind == "csv"  # tables are often sorted by class; arrays are sliced, like images
    n = len(table)
    if transform is None:
        train = np.arange(n)[split_rows(n, config.test_fraction, "train", shuffle)]
        if 0 < config.validation < len(train):  # the held-out rows are no training rows
            train = train[: len(train) - config.validation]
        if config.classes:
            probe = TableTransform((), config.label_column, (), config.impute, kind)
            codes, names = probe.labels(table, train)
            wanted = class_indices(parse_classes(config.classes), names, spec)
            train = train[np.isin(codes, wanted)]
        transform = fit(table, train, config, kind)
    rows = np.arange(n)
    if split != "all":
        rows = rows[split_rows(n, config.test_fraction, split, shuffle)]
    labels, names = transform.labels(table, rows)
    return TableSplit(transform.encode(table, rows), labels, names, rows, transform)


DATA_SOURCE.register("csv", read_csv)  # declared in vaekit.config.registry
