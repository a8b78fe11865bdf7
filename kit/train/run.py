"""`kit train`'s entry point: one run, or a cross-fitted one when ``folds`` > 1; and several
runs at once for `kit search` and `kit compare`."""
from __future__ import annotations

from typing import Callable

from kit.competition import Competition
from kit.train.config import TrainConfig
from kit.train.crossfit import train_folds
from kit.train.distributed import start_distributed
from kit.train.loop import train_run
from kit.train.side_by_side import HeadJob, head_workers, train_side_by_side
from kit.workdir import Workdir


def train(config: TrainConfig, workdir: Workdir, run_name: str, competition_name: str | None = None,
          resume: bool = False, scheduler: str = "auto") -> dict | None:
    """Train one run; returns its summary (None on torchrun ranks other than 0).
    Writes log.csv, curves.png, last.pt, best.pt, thresholds.json, summary.json and genres.png;
    with ``config.folds`` > 1, one such run per fold (without figures) and their ensemble
    (``kit/train/crossfit.py``), whose curves.png draws every fold's curves and whose genres.png
    scores the out-of-fold predictions."""
    competition = Competition.find(workdir, competition_name)
    config = config.resolved()
    if config.folds > 1:
        return train_folds(config, competition, workdir.run(run_name), run_name, resume,
                           scheduler)
    return train_run(config, competition, workdir.run(run_name), run_name, resume, scheduler)


def train_several(runs: list[tuple[str, TrainConfig]], workdir: Workdir,
                  competition_name: str | None = None, scheduler: str = "auto",
                  announce: Callable[[int], None] = lambda index: None) -> list[dict | None]:
    """Train (or resume) each (run name, config); their summaries in order (None on torchrun
    ranks other than 0). Frozen heads on one split train side by side, one per core
    (``kit/train/side_by_side.py``); anything else in turn. ``announce(i)`` is called before
    run i trains, or for every run before they all train side by side."""
    process = start_distributed()
    workers = min(1 if config.folds > 1 else head_workers(config, process, scheduler, len(runs))
                  for _, config in runs)
    if workers == 1:
        summaries = []
        for index, (run, config) in enumerate(runs):
            announce(index)
            summaries.append(train(config, workdir, run, competition_name, True, scheduler))
        return summaries
    competition = Competition.find(workdir, competition_name)
    for index in range(len(runs)):
        announce(index)
    return train_side_by_side([HeadJob(config.resolved(), competition, str(workdir.run(run)),
                                       run, resume=True) for run, config in runs],
                              scheduler, workers)
