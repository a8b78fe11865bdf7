"""Frozen-feature heads trained side by side, one worker process and one thread each.

A head's small matrices leave a second thread mostly idle, so heads trained at the same time,
one per core, finish sooner than one after the other, with the same weights bit for bit (a head
trains on one thread either way: ``kit/train/loop.py``). Cross-fitted runs (their folds and
repeats), `kit search` (its trials and seeds on one split) and `kit compare` (its strategies)
train their heads this way when every head allows it (``head_workers``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kit.competition import Competition
from kit.console import console, track
from kit.scheduler import run_jobs
from kit.train.config import TrainConfig
from kit.train.data import embed_for
from kit.train.distributed import Distributed
from kit.train.loop import train_run
from kit.train.run_folder import check_new_run

HEAD_WORKER_BYTES = 2 << 30     # a head's worker held about 1 GB on 2,528 posters: room to grow


@dataclass(frozen=True)
class HeadJob:
    """One head (a cross-fitted run's member, or a search trial) for a worker process."""
    config: TrainConfig
    competition: Competition
    run_dir: str
    name: str
    resume: bool
    fold: int | None = None


def train_head(job: HeadJob) -> dict:
    """Train one head on one thread and quietly (the parent process shows the progress)."""
    console.quiet = True
    return train_run(job.config, job.competition, Path(job.run_dir), job.name, job.resume,
                     "inline", job.fold)


def head_workers(config: TrainConfig, process: Distributed, scheduler: str, heads: int) -> int:
    """How many of ``heads`` heads of ``config`` train side by side: one per core, as many as
    the available memory holds (1: one after the other). Image models and tuned stages keep
    their threads, and torchrun or ``inline`` trains heads in turn. So do logistic heads (no
    hidden layer): one trains in about a second, less than a worker takes to start."""
    if (not config.frozen or config.tuned_stages or not config.head_hidden
            or process.world > 1 or scheduler == "inline"):
        return 1
    import psutil
    memory = psutil.virtual_memory().available // HEAD_WORKER_BYTES
    return max(1, min(os.cpu_count() or 1, heads, memory))


def train_side_by_side(jobs: list[HeadJob], scheduler: str, workers: int) -> list[dict]:
    """Train ``jobs`` on ``workers`` of the scheduler's; their summaries in the jobs' order."""
    for job in jobs:
        check_new_run(Path(job.run_dir), job.name, job.resume)
    store = jobs[0].competition.store()
    for config in dict.fromkeys(job.config for job in jobs):     # before any worker reads
        embed_for(config, store, scheduler)
    done = {}
    for summary in track(run_jobs(train_head, jobs, scheduler, workers), len(jobs),
                         f"training {len(jobs)} heads", "heads"):
        done[summary["run"]] = summary
        console.print(f"{summary['run']}: {summary['epochs_run']} epochs, best valid loss "
                      f"{summary['best_valid_loss']:.4f}")
    return [done[job.name] for job in jobs]
