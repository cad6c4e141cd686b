"""One-line notices: what vaekit did on the user's behalf that they should know.

Where data came from when it was not where they said, files skipped, a slower
path taken. Each distinct line is printed once per process, to stderr (stdout
stays the results' own). `quiet()` silences them for library callers.
"""

from __future__ import annotations

import sys

_seen: set[str] = set()
_enabled = True


def notice(message: str) -> None:
    """Print `vaekit: message` to stderr, once per distinct message."""
    if _enabled and message not in _seen:
        _seen.add(message)
        print(f"vaekit: {message}", file=sys.stderr, flush=True)


def quiet(enabled: bool = False) -> None:
    """Turn notices off (or back on with `quiet(True)`)."""
    global _enabled
    _enabled = enabled
