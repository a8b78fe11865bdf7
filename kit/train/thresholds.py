"""Per-genre decision thresholds: tuned on valid (or out-of-fold) predictions, and the rescaling
`kit predict` applies so that each tuned threshold lands on the harness's 0.5."""
from __future__ import annotations

import numpy as np

THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def tune_thresholds(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per genre, the threshold on the grid that maximises F1 (0.5 without positives)."""
    thresholds = np.full(labels.shape[1], 0.5)
    for genre in range(labels.shape[1]):
        truth = labels[:, genre].astype(bool)
        if not truth.any():
            continue
        decided = probabilities[:, genre][None, :] >= THRESHOLD_GRID[:, None]
        hits = (decided & truth).sum(1)
        f1 = 2 * hits / np.maximum(decided.sum(1) + truth.sum(), 1)
        thresholds[genre] = THRESHOLD_GRID[int(np.argmax(f1))]
    return thresholds


def decision_thresholds(tune: bool, probabilities: np.ndarray, labels: np.ndarray
                        ) -> np.ndarray:
    """Tuned thresholds, or 0.5 for every genre when tuning is off."""
    return tune_thresholds(probabilities, labels) if tune else np.full(labels.shape[1], 0.5)


def calibrate(probabilities: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Map each genre's threshold t to 0.5: [0, t] -> [0, 0.5], [t, 1] -> [0.5, 1]."""
    t = np.clip(np.asarray(thresholds, dtype=np.float64), 1e-6, 1 - 1e-6)
    below = 0.5 * probabilities / t
    above = 0.5 + 0.5 * (probabilities - t) / (1 - t)
    return np.where(probabilities < t, below, above).clip(0, 1)
