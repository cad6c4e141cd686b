"""Tables read into columns: a CSV file with a header row, or a 2-D .npy array.

A column comes back as float64 (numbers, NaN where a cell is missing or not finite)
or as strings (text, and the columns named as categorical or as the label). Every
error is one line naming the file, the line (or the array's row) and the column,
so bad data is fixed where it is rather than guessed at.

CSV files without a quote character take a fast path (numpy's C parser on the
columns of numbers: 100,000 rows x 50 columns in under a second); quoted files,
and any file the fast path cannot read, go through Python's csv module, which
also finds the exact cell at fault.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vaekit.errors import DataError

# Cells of a numeric column that mean "no value" (compared stripped and lower-cased).
MISSING = ("", "na", "n/a", "nan", "null", "none")


@dataclass
class RawTable:
    """One file's columns in header order; `cell(row, name)` gives a cell's text back
    for messages, `where(row)` says where a row sits in the file."""

    source: str
    names: list[str]
    columns: dict[str, np.ndarray]
    lines: np.ndarray | None = None  # the file line of each data row (CSV); None: arrays
    cell: Callable[[int, str], str] = field(default=lambda row, name: "", repr=False)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def where(self, row: int) -> str:
        if self.lines is None:
            return f"{self.source}, row {row}"
        return f"{self.source}, line {int(self.lines[row])}"

    def numeric(self, name: str) -> bool:
        return self.columns[name].dtype.kind == "f"


_CACHE: dict[tuple, RawTable] = {}


def read_csv(path: Path, text_columns: Iterable[str] = ()) -> RawTable:
    """The columns of a CSV file; those in `text_columns` stay text. The last file read
    is kept (keyed by its size and time stamp), so the train and test splits of one
    run parse it once."""
    text_columns = frozenset(text_columns)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, text_columns)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = _read_csv(path, text_columns)
    return _CACHE[key]


def _read_csv(path: Path, text_columns: frozenset[str]) -> RawTable:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if '"' not in text:
        table = _read_unquoted(path, text, text_columns)
        if table is not None:
            return table
    return _read_quoted(path, text, text_columns)


def check_header(path: Path, header: list[str] | None) -> list[str]:
    """Header names stripped; refuses a missing header, empty or repeated names."""
    if not header or not any(name.strip() for name in header):
        raise DataError(f"{path}: no header row (the first line must name the columns)")
    names = [name.strip() for name in header]
    for index, name in enumerate(names):
        if not name:
            raise DataError(f"{path}, line 1: column {index + 1} of the header has no name")
        if names.index(name) != index:
            raise DataError(f"{path}, line 1: column {name!r} is named twice")
    return names


def _ragged(path: Path, line: int, fields: int, width: int) -> DataError:
    return DataError(f"{path}, line {line}: {fields} fields, but the header names {width}")


def _no_rows(path: Path) -> DataError:
    return DataError(f"{path}: the header is there but no data rows follow it")


def _read_unquoted(path: Path, text: str, text_columns: frozenset[str]) -> RawTable | None:
    """The fast path: lines split by hand, numbers parsed by numpy in C. None when a
    numeric column holds something that is not a number (the slow path says what)."""
    lines = text.split("\n")
    names = check_header(path, lines[0].rstrip("\r").split(","))
    numbers = np.array([i for i, line in enumerate(lines) if i and line.strip()], dtype=np.int64)
    if not len(numbers):
        raise _no_rows(path)
    body = [lines[i].rstrip("\r") for i in numbers]
    for at, line in enumerate(body):
        if line.count(",") != len(names) - 1:
            raise _ragged(path, int(numbers[at]) + 1, line.count(",") + 1, len(names))
    numeric = [i for i, name in enumerate(names) if name not in text_columns]
    columns: dict[str, np.ndarray] = {}
    if numeric:
        try:
            values = np.loadtxt(
                body, delimiter=",", usecols=numeric, comments=None, ndmin=2, dtype=np.float64
            )
        except ValueError:
            return None
        columns |= {names[i]: values[:, j] for j, i in enumerate(numeric)}
    text_at = [i for i in range(len(names)) if i not in numeric]
    if text_at:
        split = [line.split(",") for line in body]
        for i in text_at:
            columns[names[i]] = np.char.strip(np.array([parts[i] for parts in split], dtype=str))

    def cell(row: int, name: str) -> str:
        return body[row].split(",")[names.index(name)].strip()

    ordered = {name: columns[name] for name in names}
    return RawTable(str(path), names, ordered, numbers + 1, cell)


def _read_quoted(path: Path, text: str, text_columns: frozenset[str]) -> RawTable:
    """The general path: Python's csv module, every row's field count and line checked."""
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        names = check_header(path, next(reader, None))
        rows, lines = [], []
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            if len(row) != len(names):
                raise _ragged(path, reader.line_num, len(row), len(names))
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None
    if not rows:
        raise _no_rows(path)
    table = RawTable(str(path), names, {}, np.asarray(lines, dtype=np.int64))
    table.cell = lambda row, name: rows[row][names.index(name)].strip()
    for name, column in zip(names, zip(*rows, strict=True), strict=True):
        if name not in text_columns:
            try:  # a column of numbers alone: parsed without building its text
                table.columns[name] = np.fromiter(map(float, column), np.float64, len(column))
                continue
            except ValueError:
                pass
        cells = np.char.strip(np.array(column, dtype=str))
        table.columns[name] = cells if name in text_columns else _parse(table, name, cells)
    return table


def _parse(table: RawTable, name: str, cells: np.ndarray) -> np.ndarray:
    """A column of numbers (NaN where missing), or its text when no cell is a number;
    a column that mixes numbers and text is an error naming a cell of the minority."""
    try:
        return cells.astype(np.float64)
    except ValueError:
        pass
    missing = np.isin(np.char.lower(cells), MISSING)
    values = np.full(len(cells), np.nan)
    text = np.zeros(len(cells), dtype=bool)
    for row in np.flatnonzero(~missing):
        try:
            values[row] = float(cells[row])
        except ValueError:
            text[row] = True
    numbers = ~missing & ~text
    if not numbers.any():
        return cells
    if not text.any():
        return values
    if numbers.sum() >= text.sum():
        row = int(np.flatnonzero(text)[0])
        raise DataError(
            f"{table.where(row)}, column {name!r}: {str(cells[row])!r} is not a number, but the "
            "column's other values are; fix the cell, or name the column in --categorical"
        )
    row = int(np.flatnonzero(numbers)[0])
    raise DataError(
        f"column {name!r} of {table.source} holds text and numbers ({table.where(row)}: "
        f"{str(cells[row])!r}); name it in --categorical to treat every value as a category"
    )


def read_vectors(path: Path) -> RawTable:
    """A 2-D .npy array (N, D) of numbers as D numeric columns named x0, x1, ..."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None
    if array.ndim != 2 or 0 in array.shape:
        raise DataError(f"{path}: expected vectors of shape (N, D), got {array.shape}")
    if array.dtype.kind not in "biuf":
        raise DataError(f"{path}: dtype {array.dtype}; vectors must be numbers")
    values = np.asarray(array, dtype=np.float64)
    names = [f"x{j}" for j in range(values.shape[1])]
    table = RawTable(str(path), names, {name: values[:, j] for j, name in enumerate(names)})
    table.cell = lambda row, name: repr(float(table.columns[name][row]))
    return table


def npy_is_vectors(path: Path) -> bool:
    """Whether a .npy file holds a 2-D array (vectors) rather than images; False when it
    cannot be read, so that the image reader reports why."""
    try:
        return np.load(path.expanduser(), mmap_mode="r", allow_pickle=False).ndim == 2
    except (OSError, ValueError):
        return False
