"""`kit train`'s entry point: one run, or a cross-fitted one when ``folds`` > 1."""
from __future__ import annotations

from kit.competition import Competition
from kit.train.config import TrainConfig
from kit.train.crossfit import train_folds
from kit.train.loop import train_run
from kit.workdir import Workdir


def train(config: TrainConfig, workdir: Workdir, run_name: str, competition_name: str | None = None,
          resume: bool = False, scheduler: str = "auto") -> dict | None:
    """Train one run; returns its summary (None on torchrun ranks other than 0).
    Writes log.csv, curves.png, last.pt, best.pt, thresholds.json and summary.json; with
    ``config.folds`` > 1, one such run per fold and their ensemble (``kit/train/crossfit.py``)."""
    competition = Competition.find(workdir, competition_name)
    config = config.resolved()
    if config.folds > 1:
        return train_folds(config, competition, workdir.run(run_name), run_name, resume,
                           scheduler)
    return train_run(config, competition, workdir.run(run_name), run_name, resume, scheduler)
