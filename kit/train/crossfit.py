"""Cross-fitted runs (``folds`` > 1 in a config, ``--folds`` on the command line).

Train and valid are pooled and cut into k multilabel-stratified folds. Model i trains on the
other folds and stops early on fold i, so every pooled film gets an out-of-fold prediction.
Per-genre thresholds are tuned on those predictions (k times more films than the valid part,
which steadies the thresholds of rare genres and so macro F1), and the run predicts the mean
probability of its k models. The fold runs live in ``runs/<name>/fold-<i>/``; the run's own
``best.pt`` holds the ensemble, so ``kit predict`` and the harness treat it as any other run.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from eval.metrics import f1_micro_macro
from kit.competition import Competition
from kit.console import console, table
from kit.files import write_json
from kit.models.ensemble import Ensemble
from kit.train.checkpoint import model_of, read_checkpoint, write_checkpoint
from kit.train.config import TrainConfig
from kit.train.distributed import start_distributed
from kit.train.loop import train_run
from kit.train.thresholds import decision_thresholds


def train_folds(config: TrainConfig, competition: Competition, run_dir: Path, run_name: str,
                resume: bool = False, scheduler: str = "auto") -> dict | None:
    """Train one model per fold, then save their ensemble with out-of-fold thresholds (None on
    torchrun ranks other than 0)."""
    process = start_distributed()       # under torchrun every rank trains each fold
    summaries = []
    for fold in range(config.folds):
        if process.main:
            console.rule(f"{run_name}: fold {fold + 1} of {config.folds}")
        summaries.append(train_run(config, competition, run_dir / f"fold-{fold + 1}",
                                   f"{run_name}/fold-{fold + 1}", resume, scheduler, fold))
    if not process.main:
        return None
    origins = [f"run {run_name}/fold-{fold + 1}" for fold in range(config.folds)]
    checkpoints = [read_checkpoint(run_dir / f"fold-{fold + 1}" / "best.pt", origin)
                   for fold, origin in enumerate(origins)]
    genres = checkpoints[0]["genres"]
    members = [model_of(checkpoint, origin)[1]
               for checkpoint, origin in zip(checkpoints, origins)]
    probabilities = np.concatenate([c["valid"]["probabilities"] for c in checkpoints])
    labels = np.concatenate([c["valid"]["labels"] for c in checkpoints])
    thresholds = decision_thresholds(config.tune_thresholds, probabilities, labels,
                                     config.micro_weight)
    write_checkpoint(run_dir / "best.pt", config, genres, competition.name,
                     {"members": [c["data_options"] for c in checkpoints]}, run_name,
                     Ensemble(members).state_dict(), thresholds=thresholds.tolist(),
                     valid={"probabilities": probabilities, "labels": labels})
    write_json(run_dir / "thresholds.json", dict(zip(genres, thresholds.tolist())))
    micro, macro = f1_micro_macro(labels, probabilities >= thresholds)
    summary = {
        "run": run_name, "folds": config.folds, "out_of_fold_films": len(labels),
        "epochs_run": sum(s["epochs_run"] for s in summaries),
        "best_valid_loss": round(float(np.mean([s["best_valid_loss"] for s in summaries])), 5),
        "valid_f1_micro_tuned": micro, "valid_f1_macro_tuned": macro,
        "run_dir": str(run_dir)}
    write_json(run_dir / "summary.json", summary)
    console.print(table(f"run {run_name}: {config.folds} folds, out-of-fold thresholds",
                        ["fold", "epochs", "best valid loss", "valid F1 macro (own thresholds)"],
                        ([i + 1, s["epochs_run"], s["best_valid_loss"],
                          round(s["valid_f1_macro_tuned"], 3)] for i, s in enumerate(summaries))))
    console.print(f"out-of-fold F1 ({len(labels)} films, tuned): micro {micro:.3f}, "
                  f"macro {macro:.3f}")
    return summary
