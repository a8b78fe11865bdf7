"""Metrics on the natural test distribution (scikit-learn's, from counts), with bootstrap
intervals."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

BOOTSTRAP_SEED = 0
DEFAULT_RESAMPLES = 1000
BOOTSTRAP_WORK_LIMIT = 100_000_000   # films x resamples; above it, fewer resamples


def decisions(values: np.ndarray, threshold: float) -> np.ndarray:
    """0/1 decisions: probabilities at or above ``threshold`` (decisions pass through)."""
    return (values >= threshold).astype(np.uint8)


def score(truth: np.ndarray, predicted: np.ndarray, genres: list[str],
          scores: np.ndarray | None = None) -> dict:
    """Every metric of the harness for uint8 ``truth`` and ``predicted`` of shape (n, G).

    Macro averages run over the genres present in ``truth`` (a genre absent from this part of the
    test set has no F1 to average); their false positives still count in micro averages. The
    metrics are scikit-learn's (``zero_division=0``), computed from one count of hits per genre
    and per film, which a test checks against scikit-learn itself: a million films take
    seconds, not minutes.
    """
    present = scored_genres(truth)
    truth, predicted = truth.astype(bool), predicted.astype(bool)
    hits = truth & predicted
    tp, support, chosen = (m.sum(0, dtype=np.int64) for m in (hits, truth, predicted))
    agree = truth == predicted
    result = {"films": int(truth.shape[0]), "accuracy": float(agree.mean()),
              "subset_accuracy": float(agree.all(1).mean())}
    result["error_rate"] = 1.0 - result["accuracy"]
    precision, recall, f1 = _ratio(tp, chosen), _ratio(tp, support), _ratio(2 * tp,
                                                                            chosen + support)
    weights = support / support.sum() if support.sum() else np.zeros(len(support))
    film_tp, film_true, film_chosen = (m.sum(1, dtype=np.int64) for m in (hits, truth,
                                                                            predicted))
    averages = {
        "micro": (_ratio(tp.sum(), chosen.sum()), _ratio(tp.sum(), support.sum()),
                  _ratio(2 * tp.sum(), chosen.sum() + support.sum())),
        "macro": (precision[present].mean(), recall[present].mean(), f1[present].mean()),
        "weighted": (weights @ precision, weights @ recall, weights @ f1),
        "samples": (_ratio(film_tp, film_chosen).mean(), _ratio(film_tp, film_true).mean(),
                    _ratio(2 * film_tp, film_chosen + film_true).mean())}
    for average, (p, r, f) in averages.items():
        result.update({f"precision_{average}": float(p), f"recall_{average}": float(r),
                       f"f1_{average}": float(f)})
    result["per_genre"] = [
        {"genre": g, "precision": float(precision[j]), "recall": float(recall[j]),
         "f1": float(f1[j]), "support": int(support[j]), "predicted": int(chosen[j])}
        for j, g in enumerate(genres)]
    result["macro_genres"] = int(len(present))
    result["predicted_genres_per_film"] = float(film_chosen.mean())
    result["true_genres_per_film"] = float(film_true.mean()) if len(film_true) else 0.0
    if scores is not None:
        result.update(ranking_metrics(truth, scores, genres))
    return result


def _ratio(numerator, denominator) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator),
                     where=np.asarray(denominator) > 0)


def scored_genres(truth: np.ndarray) -> np.ndarray:
    """Columns with at least one positive (all columns if there are none)."""
    present = np.flatnonzero(truth.sum(0) > 0)
    return present if len(present) else np.arange(truth.shape[1])


def ranking_metrics(truth: np.ndarray, scores: np.ndarray, genres: list[str]) -> dict:
    """Threshold-free macro average precision and ROC-AUC, over genres where they are defined
    (as scikit-learn computes them, tied scores included; one sort per genre serves both)."""
    positives = truth.sum(0)
    ap_genres = np.flatnonzero(positives > 0)
    auc_genres = np.flatnonzero((positives > 0) & (positives < len(truth)))
    out = {"ap_macro": None, "roc_auc_macro": None,
           "ranking_genres_skipped": [genres[j] for j in range(len(genres))
                                      if j not in set(auc_genres)]}
    with ThreadPoolExecutor(_threads()) as pool:      # numpy sorts without holding the GIL
        curves = dict(zip(ap_genres, pool.map(
            lambda j: _curve(truth[:, j].astype(bool), scores[:, j]), ap_genres)))
    if len(ap_genres):
        out["ap_macro"] = float(np.mean([curves[j][0] for j in ap_genres]))
    if len(auc_genres):
        out["roc_auc_macro"] = float(np.mean([curves[j][1] for j in auc_genres]))
    return out


def _curve(truth: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Average precision and ROC-AUC of one genre: hits counted at each distinct score,
    highest first (so the order within tied scores does not matter)."""
    order = np.argsort(-scores)
    ranked = scores[order]
    ends = np.append(np.flatnonzero(ranked[1:] != ranked[:-1]), len(ranked) - 1)
    tps = np.cumsum(truth[order], dtype=np.float64)[ends]
    fps = ends + 1 - tps
    precision, recall = tps / (tps + fps), tps / tps[-1]
    average_precision = float(np.sum(np.diff(recall, prepend=0.0) * precision))
    if fps[-1] == 0:
        return average_precision, float("nan")
    auc = np.trapezoid(np.append(0.0, tps / tps[-1]), np.append(0.0, fps / fps[-1]))
    return average_precision, float(auc)


def resample_count(films: int, requested: int = DEFAULT_RESAMPLES) -> int:
    """Resamples to draw: ``requested``, fewer for very large test sets (at least 100)."""
    if films * requested <= BOOTSTRAP_WORK_LIMIT:
        return requested
    return max(100, BOOTSTRAP_WORK_LIMIT // max(films, 1))


def _threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def bootstrap_weights(films: int, resamples: int, seed: int = BOOTSTRAP_SEED):
    """Yield float32 blocks of film multiplicities, one row per bootstrap resample (films drawn
    with replacement). Each resample has its own generator spawned from ``seed``: the draws do
    not depend on the block size or on how many threads draw them."""
    generators = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(resamples)]
    block = max(1, min(resamples, 20_000_000 // max(films, 1)))

    def draw(row: int, out: np.ndarray, generator: np.random.Generator) -> None:
        out[row] = np.bincount(generator.integers(0, films, films), minlength=films)

    with ThreadPoolExecutor(_threads()) as pool:     # drawing integers releases the GIL
        for start in range(0, resamples, block):
            chosen = generators[start:start + block]
            out = np.empty((len(chosen), films), dtype=np.float32)
            list(pool.map(draw, range(len(chosen)), [out] * len(chosen), chosen))
            yield out


def _f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, macro_genres: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Micro and macro F1 per resample from per-genre counts of shape (resamples, G).

    Matches scikit-learn's f1_score with ``zero_division=0`` (see tests/test_harness.py).
    """
    micro_den = 2 * tp.sum(1) + fp.sum(1) + fn.sum(1)
    micro = np.divide(2 * tp.sum(1), micro_den, out=np.zeros_like(micro_den), where=micro_den > 0)
    den = 2 * tp + fp + fn
    per_genre = np.divide(2 * tp, den, out=np.zeros_like(den), where=den > 0)
    return micro, per_genre[:, macro_genres].mean(1)


def f1_micro_macro(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """Micro and macro F1 of 0/1 decisions, macro over the genres present in ``truth`` (the rule
    of ``score``); training measures its valid F1 with this."""
    truth, predicted = truth.astype(bool), predicted.astype(bool)
    tp = (truth & predicted).sum(0, dtype=np.float64)[None]
    fp = (~truth & predicted).sum(0, dtype=np.float64)[None]
    fn = (truth & ~predicted).sum(0, dtype=np.float64)[None]
    micro, macro = _f1_from_counts(tp, fp, fn, scored_genres(truth))
    return float(micro[0]), float(macro[0])


def bootstrap_f1(truth: np.ndarray, predictions: list[np.ndarray], resamples: int,
                 seed: int = BOOTSTRAP_SEED) -> list[dict[str, np.ndarray]]:
    """Micro/macro F1 of each prediction matrix over the same resamples of the films."""
    present = scored_genres(truth)
    truth = truth.astype(bool)
    counts = []
    for predicted in predictions:
        predicted = predicted.astype(bool)
        counts.append(np.concatenate([truth & predicted, ~truth & predicted,
                                      truth & ~predicted], axis=1).astype(np.float32))
    genres = truth.shape[1]
    results = [{"micro": [], "macro": []} for _ in predictions]
    for weights in bootstrap_weights(len(truth), resamples, seed):
        for result, per_film in zip(results, counts):
            sums = (weights @ per_film).astype(np.float64)
            micro, macro = _f1_from_counts(sums[:, :genres], sums[:, genres:2 * genres],
                                           sums[:, 2 * genres:], present)
            result["micro"].append(micro)
            result["macro"].append(macro)
    return [{k: np.concatenate(v) for k, v in result.items()} for result in results]


def interval(values: np.ndarray) -> list[float]:
    """The 95% percentile interval."""
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def reference_predictions(prevalence: np.ndarray, films: int, seed: int = BOOTSTRAP_SEED
                          ) -> dict[str, np.ndarray]:
    """Decisions of the trivial predictors built from the training prior, by name."""
    genres = len(prevalence)
    random = np.random.default_rng(seed).random((films, genres)) < prevalence
    return {
        "all-genres": np.ones((films, genres), np.uint8),
        "prior": np.tile((prevalence >= 0.5).astype(np.uint8), (films, 1)),
        "random-at-prevalence": random.astype(np.uint8),
    }
