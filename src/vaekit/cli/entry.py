"""`vaekit`'s entry point: parse (no torch), then run one command, errors as one line."""

from __future__ import annotations

import argparse
import os
import sys

from vaekit.cli.parser import build_parser
from vaekit.errors import VaekitError, one_line


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
        return 130


def _run(args: argparse.Namespace) -> int | None:
    """Set the thread count, then import the commands (and torch) and run one."""
    from vaekit import threads

    if args.command not in ("train", "bench"):  # a run keeps its count in its config
        threads.configure(getattr(args, "threads", None))
    from vaekit.cli import commands

    return commands.COMMANDS[args.command](args)
