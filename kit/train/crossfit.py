"""Cross-fitted runs (``folds`` > 1 in a config, ``--folds`` on the command line).

Train and valid are pooled and cut into k multilabel-stratified folds. Model i trains on the
other folds and stops early on fold i, so every pooled film gets an out-of-fold prediction.
Per-genre thresholds are tuned on those predictions (k times more films than the valid part,
which steadies the thresholds of rare genres and so macro F1), and the run predicts the mean
probability of its k models. With ``repeats`` r > 1 the cross-fitting is done r times, each
with its own seed (so its own folds and initial weights): a film's out-of-fold prediction is the
mean of its r models that did not train on it, steadier for thresholds, and the run predicts
the mean of all k x r models. With ``separate_heads``, each backbone of the joined ones gets
its own k x r heads, on its features alone, and all of them are pooled alike. The fold runs
live in ``runs/<name>/fold-<i>/`` (repeats: ``runs/<name>/repeat-<j>/fold-<i>/``; separate
heads: ``.../<backbone>/fold-<i>/``); the run's own ``best.pt`` holds the ensemble, so ``kit
predict`` and the harness treat it as any other run.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from eval.metrics import f1_micro_macro
from kit.competition import Competition
from kit.console import console, table
from kit.files import write_json
from kit.models.ensemble import Ensemble
from kit.train.checkpoint import model_of, read_checkpoint, write_checkpoint
from kit.train.config import TrainConfig
from kit.train.distributed import Distributed, start_distributed
from kit.train.log import draw_genre_scores, draw_member_curves
from kit.train.loop import train_run
from kit.train.run_folder import claim_run
from kit.train.side_by_side import HeadJob, head_workers, train_side_by_side
from kit.train.thresholds import decision_thresholds


def member_folder(repeat: int, fold: int, backbone: str | None = None) -> str:
    """Where one model of a cross-fitted run lives, under the run's folder (with separate
    heads, in a folder of its backbone)."""
    folder = f"fold-{fold + 1}" if backbone is None else f"{backbone}/fold-{fold + 1}"
    return folder if repeat == 0 else f"repeat-{repeat + 1}/{folder}"


def member_logs(run_dir: Path, members: list[tuple[int, int, str | None]], model: str
                ) -> dict[str, list[pd.DataFrame]]:
    """Each member's ``log.csv``, grouped by backbone (one group, ``model``, without separate
    heads)."""
    groups: dict[str, list[pd.DataFrame]] = {}
    for repeat, fold, backbone in members:
        log = pd.read_csv(run_dir / member_folder(repeat, fold, backbone) / "log.csv")
        groups.setdefault(backbone or model, []).append(log)
    return groups


def binary_cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities against 0/1 labels, over films and genres."""
    p = np.clip(probabilities.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(np.where(labels.astype(bool), np.log(p), np.log1p(-p))))


def pool_out_of_fold(valids: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Each film's out-of-fold probabilities (the mean over repeats) and labels, from the valid
    predictions of every model (each with its films' ``ids``), in the order films first appear."""
    ids = np.concatenate([np.asarray(v["ids"]) for v in valids])
    probabilities = np.concatenate([v["probabilities"] for v in valids]).astype(np.float64)
    labels = np.concatenate([v["labels"] for v in valids])
    films, first, film_of = np.unique(ids, return_index=True, return_inverse=True)
    total = np.zeros((len(films), probabilities.shape[1]))
    np.add.at(total, film_of, probabilities)
    mean = total / np.bincount(film_of, minlength=len(films))[:, None]
    order = np.argsort(first)
    return mean[order].astype(np.float32), labels[first[order]]


def train_folds(config: TrainConfig, competition: Competition, run_dir: Path, run_name: str,
                resume: bool = False, scheduler: str = "auto") -> dict | None:
    """Train one model per fold (and repeat), then save their ensemble with out-of-fold
    thresholds (None on torchrun ranks other than 0)."""
    process = start_distributed()       # under torchrun every rank trains each fold
    with claim_run(run_dir, run_name, process):
        return _cross_fit(config, competition, run_dir, run_name, resume, scheduler, process)


def _cross_fit(config: TrainConfig, competition: Competition, run_dir: Path, run_name: str,
               resume: bool, scheduler: str, process: Distributed) -> dict | None:
    backbones = config.backbones if config.separate_heads else (None,)
    members = [(repeat, fold, backbone) for repeat in range(config.repeats)
               for backbone in backbones for fold in range(config.folds)]
    jobs = [HeadJob(config.updated({"seed": config.seed + repeat, "repeats": 1,
                                    "separate_heads": False, "head_backbone": backbone}),
                    competition, str(run_dir / member_folder(repeat, fold, backbone)),
                    f"{run_name}/{member_folder(repeat, fold, backbone)}", resume, fold)
            for repeat, fold, backbone in members]
    workers = head_workers(config, process, scheduler, len(jobs))
    if workers > 1:
        summaries = train_side_by_side(jobs, scheduler, workers)
    else:
        summaries = []
        for (repeat, fold, backbone), job in zip(members, jobs):
            if process.main:
                console.rule(f"{run_name}: fold {fold + 1} of {config.folds}"
                             + (f", repeat {repeat + 1} of {config.repeats}"
                                if config.repeats > 1 else "")
                             + (f", heads on {backbone}" if backbone else ""))
            summaries.append(train_run(job.config, competition, Path(job.run_dir), job.name,
                                       resume, scheduler, fold))
    if not process.main:
        return None
    origins = [f"run {run_name}/{member_folder(*member)}" for member in members]
    checkpoints = [read_checkpoint(run_dir / member_folder(*member) / "best.pt", origin)
                   for member, origin in zip(members, origins)]
    genres = checkpoints[0]["genres"]
    models = [model_of(checkpoint, origin)[1]
              for checkpoint, origin in zip(checkpoints, origins)]
    probabilities, labels = pool_out_of_fold([c["valid"] for c in checkpoints])
    thresholds = decision_thresholds(config.tune_thresholds, probabilities, labels,
                                     config.micro_weight, config.threshold_grid)
    write_checkpoint(run_dir / "best.pt", config, genres, competition.name,
                     {"members": [c["data_options"] for c in checkpoints]}, run_name,
                     Ensemble(models).state_dict(), thresholds=thresholds.tolist(),
                     valid={"probabilities": probabilities, "labels": labels})
    write_json(run_dir / "thresholds.json", dict(zip(genres, thresholds.tolist())))
    draw_member_curves(run_dir, member_logs(run_dir, members, config.model))
    draw_genre_scores(run_dir, genres, labels, probabilities, thresholds, "out-of-fold",
                      config.tune_thresholds)
    micro, macro = f1_micro_macro(labels, probabilities >= thresholds)
    summary = {
        "run": run_name, "folds": config.folds, "repeats": config.repeats,
        "out_of_fold_films": len(labels),
        "out_of_fold_loss": round(binary_cross_entropy(probabilities, labels), 5),
        "epochs_run": sum(s["epochs_run"] for s in summaries),
        "best_valid_loss": round(float(np.mean([s["best_valid_loss"] for s in summaries])), 5),
        "valid_f1_micro_tuned": micro, "valid_f1_macro_tuned": macro,
        "run_dir": str(run_dir)}
    write_json(run_dir / "summary.json", summary)
    rows = ([member_folder(*m), s["epochs_run"], s["best_valid_loss"],
             round(s["valid_f1_macro_tuned"], 3)] for m, s in zip(members, summaries))
    console.print(table(f"run {run_name}: {config.folds} folds"
                        + (f" x {config.repeats} repeats" if config.repeats > 1 else "")
                        + ", out-of-fold thresholds",
                        ["model", "epochs", "best valid loss", "valid F1 macro (own thresholds)"],
                        rows))
    console.print(f"out-of-fold loss {summary['out_of_fold_loss']:.4f}, F1 ({len(labels)} films, "
                  f"tuned): micro {micro:.3f}, macro {macro:.3f}")
    return summary
