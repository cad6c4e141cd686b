"""Export formats: `vaekit export RUN --format NAME -o OUT`.

`FORMATS` maps a name to a function that imports its writer and to what it writes,
so an exporter's optional packages (onnx, onnxscript) are imported only when that
format is asked for. A writer is `write(source, out, options) -> [paths written]`,
where `source` is anything `vaekit.load` reads (run folder, checkpoint, model
folder). A new format is one module here and one entry in `FORMATS`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vaekit.errors import ConfigError
from vaekit.export.options import ExportOptions, Writer


def _safetensors() -> Writer:
    from vaekit import pretrained

    def write(source: Path, out: Path, options: ExportOptions) -> list[Path]:
        return [pretrained.export(source, out, options.eval_files, options.half)]

    return write


def _onnx() -> Writer:
    from vaekit.export.onnx import write

    return write


def _folder() -> Writer:
    from vaekit.export.folder import write

    return write


FORMATS: dict[str, tuple[Callable[[], Writer], str]] = {
    "safetensors": (_safetensors, "one weights-only .safetensors file (the default)"),
    "onnx": (_onnx, "a folder with encoder.onnx and decoder.onnx (any batch size)"),
    "folder": (_folder, "config.json, model.safetensors and README.md (Hugging Face layout)"),
}


def export_model(
    source: str | Path,
    out: str | Path,
    format: str = "safetensors",
    options: ExportOptions | None = None,
) -> list[Path]:
    """Write the model in `source` as `format` to `out`; returns the files written."""
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; known: {', '.join(FORMATS)}")
    options = options or ExportOptions()
    if format == "onnx" and (options.eval_files or options.half):
        raise ConfigError("--eval and --half apply to --format safetensors and folder")
    return FORMATS[format][0]()(Path(source), Path(out), options)
