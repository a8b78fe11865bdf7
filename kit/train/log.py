"""A run's log: ``log.csv``, the training curves (the report's Figure 4), the terminal table."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from eval.metrics import score
from kit.console import console, table
from kit.files import write_csv


def write_log(run_dir: Path, history: list[dict], curves: bool = True) -> None:
    """Write ``log.csv`` and, with ``curves``, redraw ``curves.png`` from the epochs so far."""
    frame = pd.DataFrame(history)
    write_csv(run_dir / "log.csv", frame)
    if not curves:
        return
    from kit import plots
    import matplotlib.pyplot as plt
    figure, (losses, scores) = plt.subplots(1, 2, figsize=(10, 3.6))
    losses.plot(frame["epoch"], frame["train_loss"], marker="o", label="train")
    losses.plot(frame["epoch"], frame["valid_loss"], marker="o", label="valid")
    losses.set_xlabel("epoch")
    losses.set_ylabel("loss")
    losses.legend()
    scores.plot(frame["epoch"], frame["valid_f1_micro"], marker="o", label="valid micro F1")
    scores.plot(frame["epoch"], frame["valid_f1_macro"], marker="o", label="valid macro F1")
    scores.set_xlabel("epoch")
    scores.set_ylim(0, 1)
    scores.legend()
    figure.suptitle(f"training curves: {run_dir.name}")
    plots.save(figure, run_dir / "curves.png")


def draw_member_curves(run_dir: Path, groups: dict[str, list[pd.DataFrame]]) -> Path:
    """A cross-fitted run's ``curves.png``: the train and valid loss of each of its models by
    epoch, one colour per group (a backbone's heads), each model's best valid loss marked."""
    from kit import plots
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    figure, (train, valid) = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for colour, (group, logs) in enumerate(groups.items()):
        style = {"color": f"C{colour}", "linewidth": 0.8, "alpha": 0.6}
        for index, log in enumerate(logs):
            label = f"{group} ({len(logs)} models)" if index == 0 else None
            train.plot(log["epoch"], log["train_loss"], label=label, **style)
            valid.plot(log["epoch"], log["valid_loss"], **style)
            best = log["valid_loss"].idxmin()
            valid.plot(log["epoch"][best], log["valid_loss"][best], "o", markersize=3,
                       color=f"C{colour}")
    for axis, part in ((train, "train"), (valid, "valid")):
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(f"{part} loss" + (" (dot: the best epoch, whose weights are kept)"
                                         if part == "valid" else ""), fontsize=9)
    train.set_ylabel("loss")
    train.legend(fontsize=8)
    models = sum(len(logs) for logs in groups.values())
    figure.suptitle(f"training curves: {run_dir.name}, {models} models")
    return plots.save(figure, run_dir / "curves.png")


def print_history(name: str, history: list[dict]) -> None:
    """The run's epochs as a table on the terminal."""
    console.print(table(f"run {name}", list(history[0]), (row.values() for row in history)))


def draw_genre_scores(run_dir: Path, genres: list[str], labels: np.ndarray,
                      probabilities: np.ndarray, thresholds: np.ndarray, films: str,
                      tuned: bool) -> Path:
    """``genres.png``: each genre's F1 on the films the run's thresholds were tuned on (its
    ``films``: valid, or a cross-fitted run's out-of-fold predictions) against a random guess."""
    from kit import plots
    labels = np.asarray(labels).astype(np.uint8)
    per_genre = score(labels, probabilities >= thresholds, genres)["per_genre"]
    rule = "thresholds tuned on these films, so a little optimistic" if tuned else \
        "decisions at 0.5"
    return plots.genre_scores(
        genres, np.array([g["f1"] for g in per_genre]), labels.mean(0),
        np.array([g["support"] for g in per_genre]),
        f"run {run_dir.name}: per-genre F1 on its {len(labels)} {films} films\n({rule})",
        run_dir / "genres.png")
