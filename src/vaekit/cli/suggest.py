"""Typos on the command line answered with the nearest flag or name."""

from __future__ import annotations

import difflib
import re


def nearest(word: str, candidates: list[str]) -> str | None:
    """The candidate closest to `word`, when one is close enough to be a likely typo."""
    found = difflib.get_close_matches(word, candidates, n=1, cutoff=0.5)
    return found[0] if found else None


def improve(message: str, flags: list[str]) -> str:
    """argparse's usage error with a suggestion appended where one fits.

    Unknown flags ("unrecognized arguments: --modle") are matched against `flags`;
    a bad choice ("invalid choice: 'cnn' (choose from mlp, conv, ...)") against its
    own list of choices.
    """
    unknown = re.match(r"unrecognized arguments: (\S+)", message)
    if unknown and unknown.group(1).startswith("-"):
        guess = nearest(unknown.group(1).split("=")[0], flags)
        return f"{message}; did you mean {guess}?" if guess else message
    choice = re.search(r"invalid choice: '([^']*)' \(choose from ([^)]*)\)", message)
    if choice:
        options = [c.strip().strip("'") for c in choice.group(2).split(",")]
        guess = nearest(choice.group(1), options)
        return f"{message}; did you mean {guess}?" if guess else message
    return message
