"""`vaekit` command line: parses, calls the Python API, prints. Nothing else.

`parser` builds the argument parser without torch (so `--help` is instant),
`suggest` turns a typo into "did you mean …", `commands` holds one function per
subcommand (each calls one API function), and `entry.main` ties them together.
"""

from vaekit.cli.entry import main

__all__ = ["main"]
