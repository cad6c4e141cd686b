"""Turn SIGINT/SIGTERM into a flag that the training loop reads at step boundaries.

A signal arriving in the middle of an optimiser step or a checkpoint write must
not leave half-updated weights or a half-written file behind, so the handler
only records the request; the loop stops, checkpoints and exits cleanly.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Set by a signal handler; `signum` is the signal that asked to stop."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    def __call__(self, signum: int, frame: object) -> None:
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Route SIGINT/SIGTERM to a StopRequest while the block runs (main thread only)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # signal handlers can only be installed from the main thread
        return
    previous = {sig: signal.signal(sig, request) for sig in STOP_SIGNALS}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
