"""The project's own error types.

Every failure a user can cause (bad data, bad configuration, a bad checkpoint)
is raised as a `VaekitError`, so that the CLI can print one line and exit with
`exit_code` instead of a traceback.
"""


class VaekitError(Exception):
    """Base class: a problem the user can fix, reported in one line."""

    exit_code = 1


class ConfigError(VaekitError):
    """An invalid configuration or command line (exit code 2, like argparse)."""

    exit_code = 2


class DataError(VaekitError):
    """Missing, corrupt or mismatched data files."""


class CheckpointError(VaekitError):
    """A checkpoint that is missing, corrupt, foreign or of another format version."""
