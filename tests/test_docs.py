"""The API reference renders offline with pdoc, warnings as errors, as `make docs` runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def api_modules() -> list[str]:
    """The Makefile's API_MODULES (continued lines joined): one list for make and the test."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    return re.search(r"^API_MODULES :=(.*)$", text, re.MULTILINE).group(1).split()


def test_api_reference_renders_without_warnings(tmp_path):
    modules = api_modules()
    assert {"vaekit", "vaekit.api", "vaekit.tracking", "vaekit.export"} <= set(modules)
    out = tmp_path / "api"
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    cmd = [sys.executable, "-W", "error", "-m", "pdoc", "-o", str(out), *modules]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    train = (out / "vaekit" / "api.html").read_text()
    assert "Train a model" in train and "observers" in train  # the docstring, rendered
    assert "LOGGERS" in (out / "vaekit" / "tracking.html").read_text()
    assert "export_model" in (out / "vaekit" / "export.html").read_text()
    assert (out / "vaekit" / "export" / "onnx.html").is_file()
    assert "https://" not in (out / "index.html").read_text().split("<body")[0]  # no CDN
