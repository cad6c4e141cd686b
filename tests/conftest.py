"""Shared fixtures: the read-only MNIST copy beside the checkout, small configs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from vaekit.config import RunConfig
from vaekit.data import epoch_order, iterate_batches, load_split, to_unit

ROOT = Path(__file__).resolve().parents[1]
# The read-only copy beside the checkout; VAEKIT_TEST_MNIST points elsewhere (a GPU machine
# that gets a copy of the checkout alone, see scripts/gpu-check.sh).
MNIST_DIR = Path(
    os.environ.get("VAEKIT_TEST_MNIST") or ROOT.parent / "shared" / "data" / "mnist"
).resolve()


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    assert (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(), f"MNIST expected in {MNIST_DIR}"
    return MNIST_DIR


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads or fills the user's real cache, or finds data through the environment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    # the fast path's C kernels are built once per session, not once per test's process
    monkeypatch.setenv("VAEKIT_KERNEL_DIR", str(tmp_path_factory.getbasetemp() / "kernels"))
    monkeypatch.delenv("VAEKIT_DATA_DIR", raising=False)


@pytest.fixture
def mnist_batches(mnist_dir: Path) -> Callable[[int], list[torch.Tensor]]:
    """n -> the first n float batches of 128 training images of epoch 1's order (seed 0):
    what a training step sees, for tests that drive `train_step` by hand."""

    def batches(n: int) -> list[torch.Tensor]:
        train = load_split("mnist", "train", mnist_dir, False).subset(n * 128)
        order = epoch_order(len(train), 0, 1)
        return [to_unit(b) for b in iterate_batches(train.images, 128, order)]

    return batches


@pytest.fixture
def small_config(mnist_dir: Path) -> RunConfig:
    """The seed configuration on 2,000 examples per split, 2 epochs, no pictures, no network."""
    config = RunConfig()
    config.data.data_dir = str(mnist_dir)
    config.data.download = False
    config.data.limit = 2000
    config.train.epochs = 2
    config.train.pictures = False
    config.train.plots = False
    config.train.device = "cpu"
    return config


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say last, where it is seen, that the browser tests did not run and how to run them."""
    skipped = terminalreporter.stats.get("skipped", [])
    browser = [r for r in skipped if "browser tests need" in str(getattr(r, "longrepr", ""))]
    if browser:
        terminalreporter.write_line(
            f"NOTE: {len(browser)} browser test(s) of the explorer were skipped: install "
            "Debian's Chromium (`apt-get install chromium chromium-driver`) to run them "
            "(CI installs it and fails without it).",
            yellow=True,
        )


TIMINGS = ("seconds", "epoch_seconds")  # the only fields of a record that may differ


def untimed(run_dir: Path) -> list[dict]:
    """A run's metrics records without their wall-clock fields, to compare runs exactly."""
    from vaekit.runfolder import RunFolder

    records = RunFolder(run_dir).read_metrics()
    for record in records:
        for key in TIMINGS:
            assert record.pop(key) >= 0
    return records


@pytest.fixture
def untimed_metrics() -> Callable[[Path], list[dict]]:
    return untimed


# Every test (and every module-scoped fixture, and every subprocess) computes on torch's
# default count, so results repeat exactly whatever the load: vaekit's own default follows
# the idle cores, and the tests of that unset this.
DEFAULT_THREADS = torch.get_num_threads()
os.environ.setdefault("VAEKIT_THREADS", str(DEFAULT_THREADS))


@pytest.fixture(autouse=True)
def _threads_restored() -> Iterator[None]:
    """A test that changed torch's thread count (an in-process command) gives it back."""
    yield
    torch.set_num_threads(DEFAULT_THREADS)
