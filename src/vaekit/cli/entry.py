"""`vaekit`'s entry point: parse (no torch), then run one command, errors as one line."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from vaekit.cli.parser import build_parser
from vaekit.errors import VaekitError, one_line

INTERRUPTED = 130  # the shell's code for a process stopped by Ctrl-C (128 + SIGINT)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv
        return _run(args) or 0
    except VaekitError as exc:
        if debug:
            raise
        if os.environ.get("RANK", "0") == "0":  # under torchrun, one line from rank 0 alone
            print(f"vaekit: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # e.g. an unwritable --out folder: the OS's reason, one line
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"vaekit: error: {one_line(f'{where}{exc.strerror or exc}')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # also while torch is still importing
        print("vaekit: interrupted", file=sys.stderr)
        return INTERRUPTED


def run() -> None:
    """The `vaekit` process: `main()`, then an exit that a Ctrl-C cannot turn into death by
    SIGINT instead of the code: a late one (while the interpreter shuts down) is ignored,
    and after an interrupt the process leaves at once, because CPython keeps a flag from a
    KeyboardInterrupt that crossed C code (torch's import), caught or not, and would
    re-raise SIGINT at exit."""
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if code == INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _run(args: argparse.Namespace) -> int | None:
    """Set the thread count, then import the commands (and torch) and run one."""
    from vaekit import threads

    if args.command not in ("train", "bench"):  # a run keeps its count in its config
        threads.configure(getattr(args, "threads", None))
    from vaekit.cli import commands

    return commands.COMMANDS[args.command](args)
