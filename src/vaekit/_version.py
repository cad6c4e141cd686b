"""The version, written once: pyproject.toml reads it (a dynamic version) and
`vaekit.__version__`, `vaekit --version` and the exporters' metadata import it."""

__version__ = "0.2.0"
