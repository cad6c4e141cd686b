"""`--classes 0,3`: which labels a split keeps, by name or by label number.

A name is matched first (a named dataset's class names, a table's label values as
written), then a whole number as the label's index. The filter exists so that a
model can be trained on normal data alone (one-class anomaly detection).
"""

from __future__ import annotations

from collections.abc import Sequence

from vaekit.errors import ConfigError, DataError


def parse_classes(text: str | None) -> tuple[str, ...]:
    """ "0, 3" -> ("0", "3"); None or "" -> () (every class)."""
    if not text:
        return ()
    tokens = tuple(part.strip() for part in str(text).split(","))
    if not all(tokens):
        raise ConfigError(f"--classes must be comma-separated labels; got {text!r}")
    return tokens


def class_indices(tokens: Sequence[str], names: Sequence[str], source: str) -> list[int]:
    """The label numbers that `tokens` name; DataError for one that names no label."""
    out = []
    for token in tokens:
        if token in names:
            out.append(list(names).index(token))
        elif token.isdigit() and (not names or int(token) < len(names)):
            out.append(int(token))
        else:
            known = ", ".join(names) if names else "label numbers 0, 1, ..."
            raise DataError(f"--classes {token}: {source} has no such label (labels: {known})")
    return out
