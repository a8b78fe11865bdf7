"""Balancing strategies: one registry, each strategy selectable by name.

A strategy turns the training and validation label matrices into a ``BalancePlan``: which rows
to train and validate on, optional per-genre ``pos_weight`` for the loss, and optional per-row
sampling weights. The test part is never touched: it stays at the natural distribution.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kit.console import console, table
from kit.errors import KitError
from kit.registry import Registry

STRATEGIES = Registry()
register = STRATEGIES.register


@dataclass
class BalancePlan:
    """What a strategy changes about training."""
    train_rows: np.ndarray
    valid_rows: np.ndarray
    pos_weight: np.ndarray | None = None
    sample_weights: np.ndarray | None = None     # one per entry of train_rows
    notes: list[str] = field(default_factory=list)


def plan(name: str, train: np.ndarray, valid: np.ndarray, seed: int = 0, **options) -> BalancePlan:
    """Apply strategy ``name`` to uint8 label matrices ``train`` and ``valid``."""
    if name not in STRATEGIES:
        raise KitError(f"unknown balancing strategy {name!r}; choose one of "
                       f"{', '.join(STRATEGIES)}")
    return STRATEGIES[name](train, valid, seed=seed, **options)


def _all_rows(labels: np.ndarray) -> np.ndarray:
    return np.arange(len(labels))


@register("none")
def natural(train, valid, seed=0, **_):
    """The natural distribution, as it is."""
    return BalancePlan(_all_rows(train), _all_rows(valid))


def min_per_genre_rows(labels: np.ndarray, minimum: int, rng: np.random.Generator
                       ) -> tuple[np.ndarray, dict[int, int]]:
    """Rows holding at least ``minimum`` films of every genre, drawn rarest genre first.

    Returns the sorted rows and, for genres whose pool cannot reach ``minimum``, the count reached.
    """
    selected = np.zeros(len(labels), dtype=bool)
    counts = np.zeros(labels.shape[1], dtype=np.int64)
    short = {}
    for genre in np.argsort(labels.sum(0), kind="stable"):
        need = minimum - counts[genre]
        if need <= 0:
            continue
        pool = np.flatnonzero(labels[:, genre].astype(bool) & ~selected)
        if len(pool):
            take = rng.choice(pool, size=min(need, len(pool)), replace=False)
            selected[take] = True
            counts += labels[take].sum(0, dtype=np.int64)
        if counts[genre] < minimum:
            short[int(genre)] = int(counts[genre])
    return np.flatnonzero(selected), short


def minimum_for_size(labels: np.ndarray, target: int, seed: int) -> int:
    """The largest per-genre minimum whose balanced set has at most ``target`` films."""
    low, high = 1, int(labels.sum(0).max())
    while low < high:
        middle = (low + high + 1) // 2
        rows, _ = min_per_genre_rows(labels, middle, np.random.default_rng(seed))
        if len(rows) <= target:
            low = middle
        else:
            high = middle - 1
    return low


@register("min-per-genre")
def min_per_genre(train, valid, seed=0, min_count=None, target_size=None, genres=None, **_):
    """The report's procedure: at least M films of every genre, rarest genres first.

    M is ``min_count``, or derived from ``target_size`` (films in the balanced training set);
    the validation part is balanced the same way with M scaled to its size.
    """
    if min_count is None:
        if target_size is None:
            raise KitError("min-per-genre needs --min-count M or --target-size N")
        min_count = minimum_for_size(train, target_size, seed)
    if min_count < 1:
        raise KitError(f"--min-count must be at least 1, got {min_count}")
    valid_min = max(1, int(np.ceil(min_count * len(valid) / max(len(train), 1))))
    rng = np.random.default_rng(seed)
    train_rows, train_short = min_per_genre_rows(train, min_count, rng)
    valid_rows, valid_short = min_per_genre_rows(valid, valid_min, rng)
    names = genres or [str(j) for j in range(train.shape[1])]
    notes = [f"M = {min_count} films per genre in train, {valid_min} in valid"]
    for part, short, wanted in (("train", train_short, min_count), ("valid", valid_short,
                                                                    valid_min)):
        for genre, reached in short.items():
            notes.append(f"{part}: {names[genre]} has only {reached} films, short of {wanted}")
    return BalancePlan(train_rows, valid_rows, notes=notes)


@register("class-weight")
def class_weight(train, valid, seed=0, weight_cap=50.0, **_):
    """BCE ``pos_weight`` per genre = negatives / positives in train, capped at ``weight_cap``."""
    positives = train.sum(0).astype(np.float64)
    weight = (len(train) - positives) / np.maximum(positives, 1)
    return BalancePlan(_all_rows(train), _all_rows(valid),
                       pos_weight=np.clip(weight, 1.0, weight_cap).astype(np.float32),
                       notes=[f"pos_weight from {weight.min():.2f} to "
                              f"{min(weight.max(), weight_cap):.2f} (cap {weight_cap})"])


@register("sampler")
def rarest_genre_sampler(train, valid, seed=0, **_):
    """Draw films with probability inversely proportional to the frequency of their rarest genre."""
    frequency = train.sum(0).astype(np.float64)
    masked = np.where(train.astype(bool), frequency[None, :], np.inf)
    rarest = masked.min(1)
    weights = np.where(np.isfinite(rarest), 1.0 / rarest, 0.0)
    return BalancePlan(_all_rows(train), _all_rows(valid), sample_weights=weights / weights.sum())


def effective_rows(balance: BalancePlan, seed: int = 0) -> np.ndarray:
    """The training rows one epoch actually sees (a weighted draw for sampling strategies)."""
    if balance.sample_weights is None:
        return balance.train_rows
    rng = np.random.default_rng(seed)
    return rng.choice(balance.train_rows, size=len(balance.train_rows), replace=True,
                      p=balance.sample_weights)


def audit(name: str, train: np.ndarray, genres: list[str], balance: BalancePlan,
          out_dir: str | Path, seed: int = 0) -> dict:
    """Label distribution and genres per film before/after a strategy (Figures 1-3), as PNG
    files and a table; for ``pos_weight`` strategies "after" counts positives times their weight.
    """
    from kit import plots       # matplotlib only where figures are drawn
    out_dir = Path(out_dir)
    after_labels = train[effective_rows(balance, seed)]
    before = dict(zip(genres, train.sum(0).tolist()))
    after = dict(zip(genres, after_labels.sum(0).astype(float).tolist()))
    if balance.pos_weight is not None:
        after = {g: after[g] * float(w) for g, w in zip(genres, balance.pos_weight)}
    figure_labels = plots.label_distribution(
        {"before": before, f"after {name}": after}, f"{name}: films per genre (train)",
        out_dir / f"{name}-label_distribution.png")
    per_film = {"before": train.sum(1).tolist(), f"after {name}": after_labels.sum(1).tolist()}
    figure_per_film = plots.genres_per_film(per_film, f"{name}: genres per film (train)",
                                            out_dir / f"{name}-genres_per_film.png")
    console.print(table(f"balancing audit: {name}", ["genre", "before", "after"],
                        ((g, before[g], round(after[g], 1)) for g in genres)))
    for note in balance.notes:
        console.print(note, style="yellow")
    return {"strategy": name, "train_films_before": int(len(train)),
            "train_films_after": int(len(after_labels)),
            "mean_genres_per_film_before": round(float(train.sum(1).mean()), 3),
            "mean_genres_per_film_after": round(float(after_labels.sum(1).mean()), 3),
            "notes": balance.notes, "figures": [str(figure_labels), str(figure_per_film)]}
