"""`kit thresholds`: how a run's threshold rule scores on films it was not tuned on.

A run's tuned F1 is measured on the predictions its thresholds were tuned on, which flatters
them. This takes the predictions a run tuned on (a cross-fitted run: every pooled film's
out-of-fold prediction), cuts them into multilabel-stratified parts, tunes each part's
thresholds on the other parts for every micro weight asked (`--micro-weight`) and scores the
pooled decisions: a weight (and a threshold grid, ``--threshold-grid``) is chosen there, never
on a test part. The trade-off between micro and macro F1 is drawn to ``runs/<run>/thresholds.png``.
"""
from __future__ import annotations

import numpy as np

from kit.arguments import usable_name
from kit.console import console, table
from kit.errors import KitError
from kit.workdir import Workdir

DEFAULT_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)


def threshold_study(workdir: Workdir, run: str, weights=DEFAULT_WEIGHTS, parts: int = 10,
                    seed: int = 0, grids: tuple[str, ...] | None = None) -> dict:
    """Micro and macro F1 of each micro weight's thresholds (on each threshold grid; default:
    the run's own), tuned on other parts of the run's valid (or out-of-fold) predictions than
    the films they decide."""
    from eval.metrics import f1_micro_macro
    from kit.splits import stratified_folds
    from kit.train.checkpoint import read_checkpoint
    from kit.train.thresholds import tune_thresholds
    origin = f"run {run}"
    checkpoint = read_checkpoint(workdir.run(run) / "best.pt", origin)
    if "valid" not in checkpoint:
        raise KitError(f"{origin} was trained by an earlier kit version that did not keep its "
                       "valid predictions in best.pt; train it again under another --name")
    probabilities = np.asarray(checkpoint["valid"]["probabilities"], dtype=np.float64)
    labels = np.asarray(checkpoint["valid"]["labels"]).astype(bool)
    if len(labels) < 2 * parts:
        raise KitError(f"{origin} tuned on {len(labels)} films: too few to cut into {parts} parts")
    part_of = stratified_folds(labels, parts, seed)
    grids = grids or (checkpoint["config"].get("threshold_grid", "linear"),)
    rows = []
    for grid in grids:
        for weight in weights:
            decided = np.zeros_like(labels)
            for part in range(parts):
                held = part_of == part
                thresholds = tune_thresholds(probabilities[~held], labels[~held], weight, grid)
                decided[held] = probabilities[held] >= thresholds
            micro, macro = f1_micro_macro(labels, decided)
            rows.append({"threshold_grid": grid, "micro_weight": weight,
                         "f1_micro": round(micro, 4), "f1_macro": round(macro, 4)})
    from kit.plots import trade_off
    named = len(grids) > 1
    plot = trade_off([((f"{r['threshold_grid']}, " if named else "")
                       + f"weight {r['micro_weight']:g}", r["f1_macro"], r["f1_micro"])
                      for r in rows],
                     f"run {run}: thresholds scored on films they were not tuned on",
                     workdir.run(run) / "thresholds.png")
    return {"run": run, "films": len(labels), "parts": parts, "results": rows,
            "plot": str(plot)}


def cmd_thresholds(args) -> dict | None:
    """`kit thresholds`: score threshold rules on films they were not tuned on."""
    result = threshold_study(Workdir(args.workdir), args.run, tuple(args.micro_weight),
                             args.parts, grids=tuple(args.threshold_grid or ()))
    if args.json:
        return result
    console.print(table(f"run {args.run}: thresholds tuned on {args.parts - 1} of {args.parts} "
                        f"parts of its {result['films']} tuning films, scored on the last",
                        ["threshold grid", "micro weight", "micro F1", "macro F1"],
                        ([r["threshold_grid"], f"{r['micro_weight']:g}", r["f1_micro"],
                          r["f1_macro"]] for r in result["results"])))
    console.print(f"plot: {result['plot']}")
    return None


def add_command(command) -> None:
    """Register `kit thresholds` with the command line's ``command`` factory."""
    from kit.arguments import number, whole
    from kit.train.config import THRESHOLD_GRID_NAMES
    sub = command("thresholds", cmd_thresholds, "score threshold rules of a run on films they "
                  "were not tuned on (out-of-fold thresholds), to choose --micro-weight")
    sub.add_argument("--run", type=usable_name, required=True, help="run name")
    sub.add_argument("--micro-weight", type=number(0.0, 100.0), nargs="+",
                     default=list(DEFAULT_WEIGHTS), help="weights to compare (default: "
                     "%(default)s)")
    sub.add_argument("--threshold-grid", nargs="+", choices=THRESHOLD_GRID_NAMES,
                     help="threshold grids to compare (default: the run's own)")
    sub.add_argument("--parts", type=whole(2, 100), default=10,
                     help="parts the tuning films are cut into (default: %(default)s)")
