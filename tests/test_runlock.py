"""Two processes, one run folder: the second is refused at once, naming the first; a lock
left by a killed process blocks nothing (RELIABILITY.md, "Two processes, one run folder")."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from vaekit import checkpoint
from vaekit.cli import main
from vaekit.errors import RunBusy
from vaekit.runfolder import RunFolder
from vaekit.runlock import RunLock
from vaekit.training.loop import fit


def _holder(folder: Path) -> subprocess.Popen:
    """Another process that takes the folder's lock and keeps it until killed."""
    script = textwrap.dedent(f"""
        import time
        from vaekit.runlock import RunLock
        RunLock({str(folder)!r}).take(create=True)
        print("held", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _train_argv(mnist_dir: Path, out: Path, epochs: int = 1) -> list[str]:
    return [
        "train",
        "--data-dir",
        str(mnist_dir),
        "--no-download",
        "--limit",
        "300",
        "--batch-size",
        "64",
        "--hidden-dim",
        "32",
        "--epochs",
        str(epochs),
        "--no-pictures",
        "--no-plots",
        "--no-progress",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]


def test_a_held_folder_is_refused_naming_the_holder_and_a_killed_holder_blocks_nothing(
    tmp_path, mnist_dir, capsys
):
    folder = tmp_path / "run"
    holder = _holder(folder)
    try:
        expected = f"pid {holder.pid} on host {socket.gethostname()}"
        with pytest.raises(RunBusy, match=f"being trained by another process \\({expected}\\)"):
            RunLock(folder).take()
        started = time.monotonic()
        assert main(_train_argv(mnist_dir, folder)) == 1  # a fresh run into it
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err and str(folder) in err
        assert main(["train", "--resume", str(folder), "--no-progress"]) == 1  # a resume of it
        assert expected in capsys.readouterr().err
        assert time.monotonic() - started < 30  # at once: no data was loaded, nothing trained
        assert sorted(p.name for p in folder.iterdir()) == [".training.lock"]
        assert holder.poll() is None  # the holder runs on, untouched
    finally:
        holder.kill()
        holder.wait(timeout=30)
    lock_file = RunFolder(folder).lock_path
    assert lock_file.read_text().split()[0] == str(holder.pid)  # stale, left by kill -9
    with RunLock(folder) as lock:
        assert lock.held and lock_file.read_text().split()[0] == str(os.getpid())
    assert not lock_file.exists()  # released: the file goes with it


def test_only_rank_0_holds_the_lock(tmp_path):
    """Under torchrun the other ranks share rank 0's folder and take no lock."""
    folder = tmp_path / "run"
    with RunLock(folder).take(create=True):
        other_rank = RunLock(folder, holds=False).take(create=True)
        assert not other_rank.held
        other_rank.release()
        assert RunFolder(folder).lock_path.exists()  # rank 0's lock is still there


def test_a_run_releases_its_lock_and_a_killed_trainer_does_not_block_the_resume(
    tmp_path, mnist_dir, small_config
):
    small_config.train.epochs = 1
    small_config.data.limit = 300
    small_config.model.hidden_dim = 32
    run = fit(small_config, tmp_path / "run", log=lambda _: None, progress=False)
    assert not RunFolder(run).lock_path.exists()
    holder = _holder(run)  # stands for a trainer killed with -9, lock file and all
    holder.kill()
    holder.wait(timeout=30)
    assert RunFolder(run).lock_path.exists()
    fit(small_config, run, resume=True, resume_overrides={"epochs": 2}, log=lambda _: None)
    assert checkpoint.load(run).progress["epoch"] == 2
    assert not RunFolder(run).lock_path.exists()


def test_a_second_trainer_is_refused_while_the_first_trains_on(tmp_path, mnist_dir, capsys):
    """A real trainer in another process: the second (`--out SAME`, then `--resume`) is
    refused, the first is stopped by SIGTERM as usual and its run resumes."""
    run = tmp_path / "run"
    argv = _train_argv(mnist_dir, run, epochs=200)
    first = subprocess.Popen(
        [sys.executable, "-u", "-m", "vaekit", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout.readline().startswith("Epoch 1, Loss: ")
        for second_argv in (argv, ["train", "--resume", str(run), "--no-progress"]):
            assert main(second_argv) == 1
            err = capsys.readouterr().err.strip()
            assert f"another process (pid {first.pid} on host" in err
            assert len(err.splitlines()) == 1
        assert first.poll() is None
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=300) == 128 + signal.SIGTERM
    finally:
        first.kill()
    stopped = checkpoint.load(run)
    assert stopped.progress["epoch"] >= 1
    assert not list(run.glob(".*.tmp")) and not RunFolder(run).lock_path.exists()
    resumed = fit(
        stopped.config,
        run,
        resume=True,
        resume_overrides={"epochs": 1 + int(stopped.progress["epoch"])},
        log=lambda _: None,
        progress=False,
    )
    after = checkpoint.load(resumed)
    assert all(torch.isfinite(v).all() for v in after.model_state.values())


def test_a_lock_file_removed_while_being_taken_is_taken_afresh(tmp_path, monkeypatch):
    """The race of a holder that removes its lock file just after another process opened
    it: that process would lock a file no longer in the folder; it opens the new one."""
    folder = tmp_path / "run"
    folder.mkdir()
    real_open, raced = os.open, []

    def racing(path, flags, mode=0o777):
        fd = real_open(path, flags, mode)
        if not raced:
            raced.append(path)
            os.unlink(path)  # the holder's release, between our open and our flock
        return fd

    monkeypatch.setattr(os, "open", racing)
    lock = RunLock(folder).take()
    monkeypatch.undo()
    assert raced and lock.held
    assert os.stat(RunFolder(folder).lock_path).st_ino == os.fstat(lock._fd).st_ino
    with pytest.raises(RunBusy):
        RunLock(folder).take()
    lock.release()
