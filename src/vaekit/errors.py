"""The project's own error types.

Every failure a user can cause (bad data, bad configuration, a bad checkpoint)
is raised as a `VaekitError`, so that the CLI can print one line and exit with
`exit_code` instead of a traceback.
"""


def one_line(message: str) -> str:
    """`message` with control characters escaped: an error that echoes the user's input
    (a newline in a flag's value) stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


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


class TrainingInterrupted(VaekitError):
    """SIGINT/SIGTERM arrived; a checkpoint was written and `--resume` continues the run."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum  # the shell's convention for death by signal


class TrainingDiverged(VaekitError):
    """Too many non-finite steps in a row; the last good checkpoint is kept."""


class InputError(VaekitError):
    """Tensors or arrays handed to the Python API in a shape, dtype or range it cannot use."""


class ResourceError(VaekitError):
    """The machine cannot hold what was asked for (memory), said before allocating it."""


class RunBusy(VaekitError):
    """Another process is training in this run folder; it is left alone."""
