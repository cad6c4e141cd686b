"""Data-parallel training: 2 gloo processes on the CPU take the steps 1 process takes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from vaekit import checkpoint
from vaekit.distributed import World

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # 2 processes on 2 cores, one thread each


def _train(mnist_dir, out, *extra, nproc: int = 1, torchrun: bool = False) -> str:
    args = [
        "train",
        "--data-dir",
        str(mnist_dir),
        "--no-download",
        "--limit",
        "1024",
        "--batch-size",
        "64",
        "--no-pictures",
        "--no-plots",
        "--no-progress",
        *extra,
    ]
    if out is not None:
        args += ["--out", str(out)]
    if torchrun:
        launch = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
        command = [sys.executable, *launch, "-m", "vaekit", *args]
    else:
        command = [sys.executable, "-m", "vaekit", *args, "--nproc", str(nproc)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_shards_of_a_global_batch_are_disjoint_and_cover_it():
    batch = torch.arange(13)
    parts = [World(rank, 3).shard(batch) for rank in range(3)]
    assert [len(p) for p in parts] == [5, 4, 4]
    assert torch.equal(torch.cat(parts), batch)
    assert World().shard(batch) is batch


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("ddp") / "one"
    _train(mnist_dir, out, "--epochs", "2")
    return out


def test_two_processes_match_one_process_with_the_same_global_batch(
    one_process, tmp_path, mnist_dir
):
    stdout = _train(mnist_dir, tmp_path / "two", "--epochs", "2", nproc=2, torchrun=True)
    assert stdout.count("Epoch 2, Loss: ") == 1  # only rank 0 speaks
    one, two = checkpoint.load(one_process), checkpoint.load(tmp_path / "two")
    for key, value in one.model_state.items():
        torch.testing.assert_close(two.model_state[key], value, rtol=1e-4, atol=1e-5)
    losses = [
        (one_process / "metrics.jsonl").read_text(),
        (tmp_path / "two/metrics.jsonl").read_text(),
    ]
    first = [float(text.split('"train_loss": ')[1].split(",")[0]) for text in losses]
    assert first[0] == pytest.approx(first[1], rel=1e-5)


def test_distributed_resume_is_exact_and_nproc_launches_torchrun(tmp_path, mnist_dir):
    straight = tmp_path / "straight"
    _train(mnist_dir, straight, "--epochs", "2", nproc=2)
    resumed = tmp_path / "resumed"
    _train(mnist_dir, resumed, "--epochs", "1", nproc=2)
    stdout = _train(mnist_dir, None, "--resume", str(resumed), "--epochs", "2", nproc=2)
    assert stdout.count("Run folder:") == 1
    a, b = checkpoint.load(straight), checkpoint.load(resumed)
    assert a.progress == b.progress
    for key, value in a.model_state.items():
        assert torch.equal(b.model_state[key], value), key
