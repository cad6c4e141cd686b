"""Data-parallel training over processes started by torchrun, on PyTorch's own engine.

Each step, every rank prepares the *global* batch's inputs and noise (cheap: a
few hundred images and latent draws) from an RNG stream that is identical on
all ranks, then runs the network on its own slice. With the loss scaled by the
world size, DDP's averaged gradient is the gradient of the global batch's summed
loss: N processes take the same steps as one process with the same global batch,
up to the order of floating-point sums, and the RNG state saved by rank 0 is
every rank's, so `--resume` works unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a global batch (near-equal slices, in rank order)."""
        return batch.tensor_split(self.size)[self.rank] if self.distributed else batch

    def all_sum(self, tensors: list[torch.Tensor]) -> None:
        """Sum scalars over ranks in place (one collective for all of them)."""
        if not self.distributed:
            return
        stacked = torch.stack(tensors)
        dist.all_reduce(stacked)
        for tensor, total in zip(tensors, stacked, strict=True):
            tensor.copy_(total)

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when it is true on one (so all ranks stop together)."""
        if not self.distributed:
            return flag
        value = torch.tensor(float(flag), device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def world_from_env() -> World:
    """The world torchrun describes in RANK/WORLD_SIZE/LOCAL_RANK (one process without it)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def start(world: World, device: torch.device) -> None:
    """Join the process group: NCCL between GPUs, gloo on CPUs."""
    if world.distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def stop(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def launch(argv: list[str], nproc: int) -> int:
    """Run `python -m vaekit <argv>` in `nproc` processes on this machine under torchrun
    (what `vaekit train --nproc N` does); returns torchrun's exit status."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", str(nproc)]
    return subprocess.call([*command, "-m", "vaekit", *argv])
