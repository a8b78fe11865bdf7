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
