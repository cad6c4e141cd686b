"""The thread count: what is asked, else the idle cores; a run keeps its count so that a
resume repeats its arithmetic (1 and 2 threads round differently)."""

from __future__ import annotations

import itertools

import pytest

from vaekit import threads
from vaekit.errors import ConfigError
from vaekit.runfolder import RunFolder
from vaekit.training.loop import fit


def _stat(idle: list[int], total: list[int]) -> str:
    """/proc/stat text whose per-CPU idle and total ticks are the given ones."""
    lines = ["cpu  0 0 0 0 0 0 0 0"]
    for n, (i, t) in enumerate(zip(idle, total, strict=True)):
        lines.append(f"cpu{n} {t - i} 0 0 {i} 0 0 0 0")
    return "\n".join(lines) + "\n"


@pytest.fixture
def fake_stat(tmp_path, monkeypatch):
    """Two /proc/stat readings: cpu0 idle throughout, cpu1 busy (another program)."""
    readings = itertools.cycle([_stat([100, 100], [200, 200]), _stat([200, 102], [300, 300])])
    path = tmp_path / "stat"

    def read_text(self=None):
        return next(readings)

    monkeypatch.setattr(threads, "STAT", path)
    monkeypatch.setattr(type(path), "read_text", lambda self: read_text())
    monkeypatch.setattr(threads.time, "sleep", lambda _: None)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda _: {0, 1})
    monkeypatch.delenv(threads.ENV, raising=False)


def test_idle_cores_counts_unused_time(fake_stat):
    assert threads.idle_cores() == pytest.approx(1.02)


def test_the_default_is_the_idle_cores(fake_stat):
    assert threads.choose() == 1  # one core of two is busy


def test_asked_and_pinned_counts_win(monkeypatch):
    assert threads.choose(3) == 3
    monkeypatch.setenv(threads.ENV, "2")
    assert threads.choose() == 2
    with pytest.raises(ConfigError, match="--threads must be >= 1"):
        threads.choose(0)
    monkeypatch.setenv(threads.ENV, "many")
    with pytest.raises(ConfigError, match="VAEKIT_THREADS must be a whole number"):
        threads.choose()


def test_a_resume_keeps_the_runs_count_and_says_when_cores_are_busy(fake_stat):
    count, note = threads.for_run(2, resuming=True)
    assert count == 2 and "--threads 1 resumes faster" in note
    assert threads.for_run(None, resuming=False) == (1, None)


def test_a_run_keeps_its_count_in_its_config(small_config, tmp_path, monkeypatch):
    monkeypatch.setenv(threads.ENV, "1")
    run = fit(small_config, tmp_path / "run", log=lambda _: None, progress=False)
    assert RunFolder(run).read_config()["train"]["threads"] == 1
    monkeypatch.setenv(threads.ENV, "2")  # a resume repeats 1, whatever the default is now
    small_config.train.epochs += 1
    fit(small_config, run, resume=True, resume_overrides={"epochs": 2}, log=lambda _: None)
    assert RunFolder(run).read_config()["train"]["threads"] == 1
