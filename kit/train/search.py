"""`kit search`: random search over learning rate and dropout, as the report did.

Learning rate is drawn log-uniformly between two bounds, dropout from 0.1 to 0.5 in steps of
0.05; each trial is an ordinary run (``<name>-trialNN``), so an interrupted search resumes.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from kit.console import console, table
from kit.errors import KitError
from kit.files import write_csv, write_text
from kit.train.config import TrainConfig
from kit.train.run import train
from kit.workdir import Workdir

DROPOUTS = np.round(np.arange(0.10, 0.501, 0.05), 2)


def random_search(config: TrainConfig, workdir: Workdir, name: str, trials: int, epochs: int,
                  lr_bounds: tuple[float, float] = (1e-4, 1e-2), seed: int = 0,
                  competition: str | None = None) -> dict | None:
    """Run ``trials`` trials of ``epochs`` epochs; save the table and the best configuration
    (None on torchrun ranks other than 0)."""
    low, high = lr_bounds
    if not 0 < low < high:
        raise KitError(f"--lr-range must be two increasing positive numbers, got {low} {high}")
    if trials < 1 or epochs < 1:
        raise KitError("--trials and --trial-epochs must be at least 1")
    rng = np.random.default_rng(seed)
    draws = [(float(10 ** rng.uniform(math.log10(low), math.log10(high))),
              float(rng.choice(DROPOUTS))) for _ in range(trials)]
    rows = []
    for trial, (lr, dropout) in enumerate(draws):
        trial_config = config.updated({"lr": lr, "dropout": dropout, "epochs": epochs})
        console.print(f"[bold]trial {trial + 1}/{trials}[/]: lr {lr:.2e}, dropout {dropout}")
        summary = train(trial_config, workdir, f"{name}-trial{trial:02d}", competition,
                        resume=True)
        if summary is None:         # torchrun ranks other than 0 train along, rank 0 records
            continue
        rows.append({"trial": trial, "lr": lr, "dropout": dropout,
                     "best_valid_loss": summary["best_valid_loss"],
                     "valid_f1_micro_tuned": summary["valid_f1_micro_tuned"],
                     "valid_f1_macro_tuned": summary["valid_f1_macro_tuned"],
                     "run": summary["run"]})
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    best = frame.loc[frame["best_valid_loss"].idxmin()]
    out = workdir.root / "searches" / name
    write_csv(out / "trials.csv", frame)
    best_config = config.updated({"lr": float(best["lr"]), "dropout": float(best["dropout"])})
    write_text(out / "best_config.toml", best_config.to_toml())
    console.print(table(f"search {name}", list(frame.columns), frame.itertuples(index=False)))
    return {"search": name, "trials": trials, "best_trial": int(best["trial"]),
            "best_lr": float(best["lr"]), "best_dropout": float(best["dropout"]),
            "best_valid_loss": float(best["best_valid_loss"]),
            "best_config": str(out / "best_config.toml")}
