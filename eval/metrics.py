"""Metrics on the natural test distribution, from scikit-learn, with bootstrap intervals."""
from __future__ import annotations

import warnings

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (accuracy_score, average_precision_score, hamming_loss,
                             precision_recall_fscore_support, roc_auc_score)

AVERAGES = ("micro", "macro", "weighted", "samples")
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
    test set has no F1 to average); their false positives still count in micro averages.
    """
    present = scored_genres(truth)
    dense_predicted = predicted
    # scikit-learn converts multilabel indicators to CSR on every call; convert them once.
    truth, predicted = csr_matrix(truth), csr_matrix(predicted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        result = {"films": int(truth.shape[0]),
                  "accuracy": 1.0 - hamming_loss(truth, predicted),
                  "error_rate": hamming_loss(truth, predicted),
                  "subset_accuracy": accuracy_score(truth, predicted)}
        for average in AVERAGES:
            p, r, f, _ = precision_recall_fscore_support(
                truth, predicted, average=average, zero_division=0,
                labels=present if average == "macro" else None)
            result.update({f"precision_{average}": p, f"recall_{average}": r,
                           f"f1_{average}": f})
        p, r, f, support = precision_recall_fscore_support(truth, predicted, average=None,
                                                           zero_division=0)
    predicted_counts = dense_predicted.sum(0)
    result["per_genre"] = [
        {"genre": g, "precision": float(p[j]), "recall": float(r[j]), "f1": float(f[j]),
         "support": int(support[j]), "predicted": int(predicted_counts[j])}
        for j, g in enumerate(genres)]
    result["macro_genres"] = int(len(present))
    result["predicted_genres_per_film"] = float(dense_predicted.sum(1).mean())
    result["true_genres_per_film"] = float(truth.sum() / max(truth.shape[0], 1))
    if scores is not None:
        result.update(ranking_metrics(truth.toarray(), scores, genres))
    return {k: float(v) if isinstance(v, np.floating) else v for k, v in result.items()}


def scored_genres(truth: np.ndarray) -> np.ndarray:
    """Columns with at least one positive (all columns if there are none)."""
    present = np.flatnonzero(truth.sum(0) > 0)
    return present if len(present) else np.arange(truth.shape[1])


def ranking_metrics(truth: np.ndarray, scores: np.ndarray, genres: list[str]) -> dict:
    """Threshold-free macro average precision and ROC-AUC, over genres where they are defined."""
    positives = truth.sum(0)
    ap_genres = np.flatnonzero(positives > 0)
    auc_genres = np.flatnonzero((positives > 0) & (positives < len(truth)))
    out = {"ap_macro": None, "roc_auc_macro": None,
           "ranking_genres_skipped": [genres[j] for j in range(len(genres))
                                      if j not in set(auc_genres)]}
    if len(ap_genres):
        out["ap_macro"] = float(average_precision_score(truth[:, ap_genres], scores[:, ap_genres],
                                                        average="macro"))
    if len(auc_genres):
        out["roc_auc_macro"] = float(roc_auc_score(truth[:, auc_genres], scores[:, auc_genres],
                                                   average="macro"))
    return out


def resample_count(films: int, requested: int = DEFAULT_RESAMPLES) -> int:
    """Resamples to draw: ``requested``, fewer for very large test sets (at least 100)."""
    if films * requested <= BOOTSTRAP_WORK_LIMIT:
        return requested
    return max(100, BOOTSTRAP_WORK_LIMIT // max(films, 1))


def bootstrap_weights(films: int, resamples: int, seed: int = BOOTSTRAP_SEED):
    """Yield blocks of film multiplicities, one row per bootstrap resample (films resampled)."""
    rng = np.random.default_rng(seed)
    block = max(1, min(resamples, 20_000_000 // max(films, 1)))
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        yield np.stack([np.bincount(rng.integers(0, films, films), minlength=films)
                        for _ in range(rows)]).astype(np.float32)


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
