"""The wheel: everything under src/vaekit inside it, small, and working in a fresh virtual
environment that holds only the pinned torch, the wheel and its declared dependencies."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vaekit
from vaekit.cli import main

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "vaekit"
MAX_WHEEL_BYTES = 10 * 2**20


def _clean_env() -> dict[str, str]:
    """The environment minus what would let the fresh venv see this checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """`python -m build` of this checkout: the sdist, then the wheel built from the sdist
    (so nothing left over in build/ can slip in), as pip builds a source release."""
    out = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_clean_env())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="session")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    """A new venv, no system site-packages: torch from requirements/torch-cpu.txt, then the
    wheel and its dependencies from the index. This pip installs into it (`pip --python`),
    so the venv needs no pip of its own, and nothing is byte-compiled up front: the two
    slow steps that test nothing about vaekit."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
    flags = ["--quiet", "--no-compile", "--disable-pip-version-check"]
    for what in (["-r", str(ROOT / "requirements" / "torch-cpu.txt")], [str(wheel)]):
        done = subprocess.run(
            [*pip, *flags, *what], capture_output=True, text=True, timeout=900, env=_clean_env()
        )
        assert done.returncode == 0, done.stderr[-3000:]
    return venv


def test_wheel_carries_every_file_of_the_package_and_is_small(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    ours = [
        p.relative_to(PACKAGE.parent).as_posix()
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    for kind in ("explorer/index.html", "explorer/explorer.js", "presets/", "pretrained/mnist"):
        assert any(kind in name for name in ours), kind
    missing = sorted(set(ours) - names)
    assert not missing, f"not in the wheel: {missing}"
    assert wheel.stat().st_size < MAX_WHEEL_BYTES, f"{wheel.stat().st_size:,} bytes"
    assert wheel.name == f"vaekit-{vaekit.__version__}-py3-none-any.whl"
    metadata = zipfile.ZipFile(wheel).read(f"vaekit-{vaekit.__version__}.dist-info/METADATA")
    for extra in ("tensorboard", "mlflow", "onnx", "dev"):
        assert f"Provides-Extra: {extra}" in metadata.decode()


def _run(venv: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=_clean_env(),
    )


def test_the_wheel_alone_samples_the_shipped_model(fresh_venv, tmp_path):
    version = _run(fresh_venv, ["vaekit", "--version"], tmp_path)
    assert version.stdout.strip() == f"vaekit {vaekit.__version__}", version.stderr
    where = _run(fresh_venv, ["python", "-c", "import vaekit; print(vaekit.__file__)"], tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(fresh_venv)  # not this checkout
    out = tmp_path / "samples.png"
    done = _run(
        fresh_venv, ["vaekit", "sample", "--pretrained", "mnist-seed", "-o", str(out)], tmp_path
    )
    assert done.returncode == 0, done.stderr
    here = tmp_path / "here.png"
    assert main(["sample", "--pretrained", "mnist-seed", "-o", str(here)]) == 0
    pixels = np.asarray(Image.open(out))
    assert pixels.std() > 20
    np.testing.assert_array_equal(pixels, np.asarray(Image.open(here)))  # the same weights


def test_the_wheel_finds_its_data_and_lacks_the_extras(fresh_venv, tmp_path):
    probe = (
        "from importlib import resources; from vaekit import presets, pretrained;"
        "print(sorted(f.name for f in resources.files('vaekit.explorer').iterdir()));"
        "print(presets.names()); print(pretrained.names())"
    )
    done = _run(fresh_venv, ["python", "-c", probe], tmp_path)
    assert done.returncode == 0, done.stderr
    assets, preset_names, weights = done.stdout.splitlines()
    assert all(p.name in assets for p in (PACKAGE / "explorer").iterdir() if p.is_file())
    assert "mnist-seed" in preset_names and "mnist-seed" in weights
    refused = _run(fresh_venv, ["vaekit", "train", "--log", "mlflow", "--out", "r"], tmp_path)
    assert refused.returncode == 2
    assert "pip install 'vaekit[mlflow]'" in refused.stderr  # extras stay optional
