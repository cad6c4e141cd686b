"""`make demo`, the README's first command, works every time: fresh, again, after Ctrl-C."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
pytestmark = pytest.mark.skipif(
    shutil.which("make") is None or not (VENV / ".installed").is_file(),
    reason="needs make and a venv set up by make (`make test` makes one)",
)


def _demo(run: Path, mnist_dir: Path, **popen: object) -> subprocess.Popen:
    args = f"--data-dir {mnist_dir} --limit 600 --epochs 3 --no-plots --no-progress"
    command = ["make", "-s", "demo", f"VENV={VENV}", f"RUN_DIR={run}", f"DEMO_ARGS={args}"]
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
    )


def _finish(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out
    return out


def test_demo_twice(tmp_path, mnist_dir):
    run = tmp_path / "demo"
    first = _finish(_demo(run, mnist_dir))
    assert "Epoch 3, Loss:" in first and "report.html" in first.splitlines()[-1]
    second = _finish(_demo(run, mnist_dir))
    assert "has finished its 3 epoch(s)" in second and "Epoch" not in second
    assert (run / "samples.png").is_file()


def test_demo_after_an_interruption(tmp_path, mnist_dir):
    run = tmp_path / "demo"
    process = _demo(run, mnist_dir, start_new_session=True)
    for line in process.stdout:  # Ctrl-C reaches the whole group, as from a terminal
        if line.startswith("Epoch 1,"):
            process.send_signal(signal.SIGINT)
            subprocess.run(["pkill", "-INT", "-g", str(process.pid)], check=False)
            break
    process.communicate(timeout=600)
    assert process.returncode != 0 and (run / "checkpoint.safetensors").is_file()
    resumed = _finish(_demo(run, mnist_dir))
    assert "Resuming" in resumed and "Epoch 3, Loss:" in resumed
