"""Score one submission against the answer key, part by part (Public, Private)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from eval.answers import USAGES, AnswerKey
from eval.metrics import (DEFAULT_RESAMPLES, bootstrap_f1, decisions, interval,
                          resample_count, score)
from eval.submission import Submission, read_submission

PRIMARY = ("f1_macro", "f1_micro")


def score_part(key: AnswerKey, usage: str, submission: Submission, threshold: float,
               resamples: int, against: Submission | None = None) -> dict:
    """Metrics, bootstrap intervals and reference rows for one part of the test set."""
    rows = key.part(usage)
    truth = key.labels[rows]
    values = submission.values[rows]
    predicted = decisions(values, threshold)
    result = score(truth, predicted, key.genres, values if submission.has_scores else None)
    resamples = resample_count(len(rows), resamples)
    compared = [predicted] + ([decisions(against.values[rows], threshold)] if against else [])
    draws = bootstrap_f1(truth, compared, resamples) if resamples else None
    if draws:
        result["bootstrap_resamples"] = resamples
        result["f1_micro_interval"] = interval(draws[0]["micro"])
        result["f1_macro_interval"] = interval(draws[0]["macro"])
    if against is not None:
        other = score(truth, compared[1], key.genres)
        result["against"] = {
            metric: {"difference": result[f"f1_{metric}"] - other[f"f1_{metric}"],
                     "interval": interval(draws[0][metric] - draws[1][metric]) if draws else None}
            for metric in ("micro", "macro")}
    result["references"] = key.references(usage)
    best = {m: max(r[m] for r in result["references"].values()) for m in PRIMARY}
    result["beats_references"] = all(result[m] > best[m] for m in PRIMARY)
    return result


def draw_grid(path: str | Path, submission_path: str | Path, key: AnswerKey, threshold: float = 0.5,
              count: int = 18, seed: int = 0) -> Path:
    """Figure 5 of the report for the public part: posters, true and predicted genres."""
    from kit import plots
    from kit.labels import decode
    from kit.competition import Competition
    submission = read_submission(submission_path, key.ids, key.genres)
    rows = key.part("Public")
    rows = np.sort(np.random.default_rng(seed).choice(rows, min(count, len(rows)), replace=False))
    store = Competition(key.competition).store()
    positions = store.positions([key.ids[r] for r in rows])
    predicted = decisions(submission.values[rows], threshold)
    return plots.poster_grid([np.asarray(store[int(p)]) for p in positions],
                             decode(key.labels[rows], key.genres), decode(predicted, key.genres),
                             f"{Path(submission_path).name}: public test posters", path)


def score_submission(path: str | Path, key: AnswerKey, threshold: float = 0.5,
                     resamples: int = DEFAULT_RESAMPLES, against: str | Path | None = None,
                     reveal_private: bool = False) -> dict:
    """Validate and score ``path``; the private part only when revealed or closed."""
    if not 0 < threshold < 1:
        from kit.errors import KitError
        raise KitError(f"--threshold must be between 0 and 1, got {threshold}")
    submission = read_submission(path, key.ids, key.genres)
    other = read_submission(against, key.ids, key.genres) if against else None
    show_private = reveal_private or key.closed
    parts = {}
    for usage in USAGES:
        if usage == "Private" and not show_private:
            continue
        if len(key.part(usage)):
            parts[usage.lower()] = score_part(key, usage, submission, threshold, resamples, other)
    return {"submission": str(path), "competition": key.competition.name,
            "kind": submission.kind, "threshold": threshold, "genres": key.genres,
            "private_shown": show_private, **parts}


def tied_with_best(key: AnswerKey, paths: list[str | Path], usage: str = "Public",
                   metric: str = "f1_macro", threshold: float = 0.5,
                   resamples: int = DEFAULT_RESAMPLES) -> list[bool]:
    """For submissions ranked best first: is each one statistically tied with the first?

    Paired bootstrap on ``usage``'s films: tied when the 95% interval of (best - other) covers
    zero. Only micro and macro F1 have intervals; other metrics tie nothing."""
    average = {"f1_macro": "macro", "f1_micro": "micro"}.get(metric)
    if average is None or not paths or resamples < 1:
        return [False] * len(paths)
    rows = key.part(usage)
    truth = key.labels[rows]
    predicted = [decisions(read_submission(p, key.ids, key.genres).values[rows], threshold)
                 for p in paths]
    draws = bootstrap_f1(truth, predicted, resample_count(len(rows), resamples))
    best = draws[0][average]
    return [True] + [bool(interval(best - other[average])[0] <= 0) for other in draws[1:]]
