"""`kit search`: random search over the head's and the training's hyperparameters.

The report searched learning rate (log-uniform between two bounds) and dropout (0.1 to 0.5 in
steps of 0.05); that stays the default space. ``--space`` adds weight decay, the frozen head's
hidden units, the batch size, partial fine-tuning's stages (0 to 2) and learning rate
(log-uniform, 1e-5 to 1e-3), the frozen head's mixup (0, 0.1, 0.2 or 0.4) and label
smoothing (0, 0.01, 0.02 or 0.05). Each trial is
an ordinary run (``<name>-trialNN``, and ``-seedK`` for its further seeds), so an interrupted
search resumes. A cross-fitted config (``folds`` > 1) scores each trial out of fold (its heads
side by side within each trial); frozen heads on one split train side by side across trials and
seeds (``kit.train.side_by_side``).
Trials are ranked by their mean valid loss over seeds; the table shows tuned F1 as mean and
spread over seeds.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd
from rich.text import Text

from kit.console import console, table
from kit.errors import KitError
from kit.files import write_csv, write_text
from kit.train.config import DEFAULT_SEARCH_SPACE, SEARCHABLE, TrainConfig
from kit.train.run import train_several
from kit.workdir import Workdir

DROPOUTS = np.round(np.arange(0.10, 0.501, 0.05), 2)
WEIGHT_DECAYS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
HEAD_HIDDEN = (0, 256, 512, 1024, 2048)
BATCH_SIZES = (16, 32, 64, 128)
TUNED_STAGES = (0, 1, 2)
BACKBONE_LR = (1e-5, 1e-3)
MIXUPS = (0.0, 0.1, 0.2, 0.4)
LABEL_SMOOTHINGS = (0.0, 0.01, 0.02, 0.05)
LOG_SCALED = ("lr", "backbone_lr")       # shown as 1.23e-04


def _log_uniform(low: float, high: float) -> Callable:
    return lambda rng: float(10 ** rng.uniform(math.log10(low), math.log10(high)))


def _choice(values) -> Callable:
    return lambda rng: rng.choice(values).item()


def search_space(lr_bounds: tuple[float, float]) -> dict[str, Callable]:
    """How a trial draws each of the config's searchable fields (``SEARCHABLE``)."""
    draws = {"lr": _log_uniform(*lr_bounds), "dropout": _choice(DROPOUTS),
             "weight_decay": _choice(WEIGHT_DECAYS), "head_hidden": _choice(HEAD_HIDDEN),
             "batch_size": _choice(BATCH_SIZES), "tuned_stages": _choice(TUNED_STAGES),
             "backbone_lr": _log_uniform(*BACKBONE_LR), "mixup": _choice(MIXUPS),
             "label_smoothing": _choice(LABEL_SMOOTHINGS)}
    assert tuple(draws) == SEARCHABLE
    return draws


def random_search(config: TrainConfig, workdir: Workdir, name: str, trials: int, epochs: int,
                  lr_bounds: tuple[float, float] = (1e-4, 1e-2), seed: int = 0,
                  competition: str | None = None, space: tuple[str, ...] = DEFAULT_SEARCH_SPACE,
                  seeds: int = 1, scheduler: str = "auto") -> dict | None:
    """Run ``trials`` trials of ``epochs`` epochs, each with ``seeds`` seeds (frozen heads side
    by side on the ``scheduler``'s workers); save the table and the best configuration (None on
    torchrun ranks other than 0)."""
    low, high = lr_bounds
    if not 0 < low < high:
        raise KitError(f"--lr-range must be two increasing positive numbers, got {low} {high}")
    if trials < 1 or epochs < 1 or seeds < 1:
        raise KitError("--trials, --trial-epochs and --seeds must be at least 1")
    draws = search_space(lr_bounds)
    unknown = [s for s in space if s not in draws]
    if unknown or not space:
        raise KitError(f"--space takes names among {', '.join(draws)}; got "
                       f"{', '.join(unknown) or 'none'}")
    frozen_only = [s for s in ("head_hidden", "tuned_stages", "backbone_lr", "mixup")
                   if s in space]
    if frozen_only and not config.frozen:
        raise KitError(f"--space {' '.join(frozen_only)} needs a frozen-feature config "
                       "(--frozen)")
    space = tuple(dict.fromkeys(space))
    rng = np.random.default_rng(seed)
    trial_values = [{s: draws[s](rng) for s in space} for _ in range(trials)]
    for trial, values in enumerate(trial_values):     # refused combinations before any work
        config.updated(values, f"the values --space drew for trial {trial + 1}")
    runs = [(f"{name}-trial{trial:02d}" + (f"-seed{extra}" if extra else ""),
             config.updated({**values, "epochs": epochs, "seed": config.seed + extra}))
            for trial, values in enumerate(trial_values) for extra in range(seeds)]

    def announce(index: int) -> None:
        trial, extra = divmod(index, seeds)
        console.print(Text.assemble((f"trial {trial + 1}/{trials}", "bold"),
                                    f"{f' seed {extra + 1}/{seeds}' if seeds > 1 else ''}: "
                                    f"{_described(trial_values[trial])}"))

    summaries = train_several(runs, workdir, competition, scheduler, announce=announce)
    rows = []
    for trial, values in enumerate(trial_values):
        # torchrun: other ranks train along (None), rank 0 records
        done = [s for s in summaries[trial * seeds:(trial + 1) * seeds] if s is not None]
        if done:
            rows.append({"trial": trial, **values, **_over_seeds(done),
                         "runs": " ".join(s["run"] for s in done)})
    if not rows:
        return None
    return _save(config, workdir, name, pd.DataFrame(rows), space, trials)


def _described(values: dict) -> str:
    return ", ".join(f"{k} {v:.2e}" if k in LOG_SCALED else f"{k} {v}" for k, v in values.items())


def _over_seeds(summaries: list[dict]) -> dict:
    """Mean and spread (sample standard deviation; 0 for one seed) of each score."""
    out = {"seeds": len(summaries)}
    for key, column in (("best_valid_loss", "valid_loss"), ("valid_f1_macro_tuned", "f1_macro"),
                        ("valid_f1_micro_tuned", "f1_micro")):
        values = np.array([s[key] for s in summaries], dtype=np.float64)
        out[f"{column}_mean"] = float(values.mean())
        out[f"{column}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


def _save(config: TrainConfig, workdir: Workdir, name: str, frame: pd.DataFrame,
          space: tuple[str, ...], trials: int) -> dict:
    best = frame.loc[frame["valid_loss_mean"].idxmin()]
    out = workdir.root / "searches" / name
    write_csv(out / "trials.csv", frame)
    chosen = {s: best[s].item() for s in space}
    best_config = config.updated(chosen)
    write_text(out / "best_config.toml", best_config.to_toml())
    scored = "out-of-fold" if config.folds > 1 else "valid"
    shown = [[int(row.trial), *(f"{row[s]:.2e}" if s in LOG_SCALED else row[s] for s in space),
              f"{row.valid_loss_mean:.4f}",
              *(f"{row[f'{m}_mean']:.3f} ± {row[f'{m}_sd']:.3f}" for m in ("f1_macro",
                                                                            "f1_micro"))]
             for _, row in frame.iterrows()]
    console.print(table(f"search {name}: {scored} scores, tuned thresholds, mean ± sd over "
                        f"{int(frame['seeds'].max())} seed(s)",
                        ["trial", *space, "valid loss", "F1 macro", "F1 micro"], shown))
    return {"search": name, "trials": trials, "best_trial": int(best["trial"]),
            **{f"best_{s}": v for s, v in chosen.items()},
            "best_valid_loss": float(best["valid_loss_mean"]),
            "best_config": str(out / "best_config.toml")}
