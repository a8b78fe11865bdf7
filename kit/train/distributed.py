"""torchrun (gloo, CPU) and seeding: which process this is, and the seeds every run derives."""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

EPOCH_SEED_STRIDE = 100_003     # seed * stride + epoch: one stream per (seed, epoch)


@dataclass
class Distributed:
    """This process's rank among ``world`` torchrun processes (0 of 1 without torchrun)."""
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def start_distributed() -> Distributed:
    """Join the torchrun process group when launched by torchrun (gloo: CPU-only).

    Joined once per process and left at exit: the runs of a search, a comparison or a cross-fit
    share it (gloo cannot be re-joined after leaving within one torchrun launch)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group("gloo")
        atexit.register(dist.destroy_process_group)
    return Distributed(dist.get_rank(), dist.get_world_size())


def barrier(process: Distributed) -> None:
    """Wait for every torchrun process (nothing without torchrun)."""
    if process.world > 1:
        dist.barrier()


def seed_everything(seed: int) -> None:
    """Seed torch and NumPy's global generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def run_seed(seed: int, fold: int | None) -> int:
    """The seed of a run, or of one fold's model (each fold its own, for a diverse ensemble)."""
    return seed if fold is None else seed * 1_000 + fold + 1


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch: each epoch is reproducible on its own, for --resume."""
    return seed * EPOCH_SEED_STRIDE + epoch
