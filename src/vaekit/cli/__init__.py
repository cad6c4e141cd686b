"""`vaekit` command line: parses, calls the Python API, prints. Nothing else.

`parser` builds the argument parser without torch (so `--help` is instant),
`suggest` turns a typo into "did you mean …", `commands` holds one function per
subcommand (each calls one API function), and `entry.main` ties them together
(`entry.run` is the process's entry point).
"""

from vaekit.cli.entry import main, run

__all__ = ["main", "run"]
