"""The figures people would rather look at than read (matplotlib, written as PNG files)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
# Labels come from data (genre and file names): never read them as TeX math ("$\\foo$").
matplotlib.rcParams["text.parse_math"] = False
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kit.files import atomic_path  # noqa: E402


LABEL_CHARACTERS = 40       # a 150-character file name as an axis label squeezed its plot away


def short_label(text: str, limit: int = LABEL_CHARACTERS) -> str:
    """``text`` cut in the middle to at most ``limit`` characters, keeping both ends (a file
    name's start and its suffix tell names apart)."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head):]


def save(figure, path: str | Path) -> Path:
    """Write ``figure`` as a PNG atomically and close it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def label_distribution(counts: dict[str, dict[str, int]], title: str, path: str | Path) -> Path:
    """Films per genre, one bar group per series (e.g. before/after balancing): Figure 1/2."""
    series = list(counts)
    genres = sorted({g for c in counts.values() for g in c},
                    key=lambda g: -counts[series[0]].get(g, 0))
    figure, axis = plt.subplots(figsize=(max(6, 0.45 * len(genres)), 4))
    width = 0.8 / len(series)
    x = np.arange(len(genres))
    for i, name in enumerate(series):
        axis.bar(x + i * width, [counts[name].get(g, 0) for g in genres], width, label=name)
    axis.set_xticks(x + width * (len(series) - 1) / 2, [short_label(g) for g in genres],
                    rotation=60, ha="right")
    axis.set_ylabel("films")
    axis.set_title(title)
    if len(series) > 1:
        axis.legend()
    return save(figure, path)


def genres_per_film(groups: dict[str, list[int]], title: str, path: str | Path) -> Path:
    """Share of films with 1, 2, 3, ... genres per group (e.g. dramas vs others): Figure 3."""
    top = max((max(v) for v in groups.values() if len(v)), default=1)
    ks = np.arange(1, top + 1)
    figure, axis = plt.subplots(figsize=(6, 3.6))
    width = 0.8 / max(len(groups), 1)
    for i, (name, values) in enumerate(groups.items()):
        values = np.asarray(values)
        shares = [(values == k).mean() if len(values) else 0 for k in ks]
        axis.bar(ks + i * width, shares, width, label=f"{name} (n={len(values)})")
    axis.set_xticks(ks + width * (len(groups) - 1) / 2, [str(k) for k in ks])
    axis.set_xlabel("genres per film")
    axis.set_ylabel("share of films")
    axis.set_title(title)
    axis.legend()
    return save(figure, path)


def poster_grid(images: list[np.ndarray], truths: list[str], predictions: list[str], title: str,
                path: str | Path, columns: int = 6) -> Path:
    """Posters (uint8, 3xHxW) with their true and predicted genres: the report's Figure 5."""
    import textwrap
    rows = max(1, int(np.ceil(len(images) / columns)))
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 4.8 * rows), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, image, truth, predicted in zip(axes.ravel(), images, truths, predictions):
        axis.imshow(image.transpose(1, 2, 0))
        hits = set(truth.split("|")) & set(predicted.split("|"))
        caption = "\n".join(textwrap.wrap(f"true: {truth.replace('|', ', ') or '-'}", 34) +
                            textwrap.wrap(f"pred: {predicted.replace('|', ', ') or '-'}", 34))
        axis.set_title(caption, fontsize=7, color="darkgreen" if hits else "darkred")
    figure.suptitle(title)
    return save(figure, path)


def trade_off(points: list[tuple[str, float, float]], title: str, path: str | Path) -> Path:
    """Micro F1 against macro F1, one labelled point per setting, joined in the given order."""
    figure, axis = plt.subplots(figsize=(5.5, 4))
    macro = [p[1] for p in points]
    micro = [p[2] for p in points]
    axis.plot(macro, micro, "o-", color="tab:blue")
    for label, x, y in points:
        axis.annotate(label, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    axis.set_xlabel("macro F1")
    axis.set_ylabel("micro F1")
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    return save(figure, path)


def genre_scores(genres: list[str], f1: np.ndarray, prevalence: np.ndarray, support: np.ndarray,
                 title: str, path: str | Path) -> Path:
    """Each genre's F1 (bars, the most frequent genre first, its films in brackets) beside the
    F1 a random guess at its prevalence gets (ticks): which genres a model learnt, which not."""
    order = np.argsort(-np.asarray(support), kind="stable")
    y = np.arange(len(genres))
    figure, axis = plt.subplots(figsize=(7, 1 + 0.3 * len(genres)))
    axis.barh(y, np.asarray(f1)[order], color="tab:blue", label="F1 at the run's thresholds")
    axis.scatter(np.asarray(prevalence)[order], y, marker="|", s=180, color="black",
                 label="a random guess at the genre's prevalence")
    axis.set_yticks(y, [f"{short_label(genres[j])} ({support[j]})" for j in order])
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_xlabel("F1")
    axis.legend(loc="lower right", fontsize=8)
    axis.set_title(title, fontsize=10)
    return save(figure, path)
