"""Per-genre decision thresholds: tuned on valid (or out-of-fold) predictions, and the rescaling
`kit predict` applies so that each tuned threshold lands on the harness's 0.5."""
from __future__ import annotations

import numpy as np

THRESHOLD_GRIDS = {
    # 0.05 to 0.95 in steps of 0.05: coarse where rare genres' probabilities live (a genre on
    # 1% of films is rarely given more than 0.05), so their thresholds cannot reach them
    "linear": np.round(np.arange(0.05, 0.96, 0.05), 2),
    # 50 values from 0.001 to 0.95, each 15% above the last (and 0.5): as fine for a rare genre's
    # probabilities as for a common one's
    "log": np.unique(np.append(np.round(np.geomspace(0.001, 0.95, 50), 4), 0.5)),
}
JOINT_ROUNDS = 20       # at most, passes over the genres when tuning for macro and micro F1


def tune_thresholds(probabilities: np.ndarray, labels: np.ndarray, micro_weight: float = 0.0,
                    grid: str = "linear") -> np.ndarray:
    """Per genre, the threshold on the named grid (``THRESHOLD_GRIDS``) that maximises its F1
    (0.5 without positives).

    With ``micro_weight`` w > 0 the thresholds are then moved genre by genre (coordinate ascent,
    until no single genre's move helps) to maximise macro F1 + w * micro F1 of all decisions
    together: a rare genre's F1 is flat near its own best threshold, which is low and so makes
    many false positives that micro F1 counts; a higher one trades little of the first for much
    of the second."""
    values = THRESHOLD_GRIDS[grid]
    truth = labels.astype(bool)
    hits, false = (np.empty((len(values), labels.shape[1])) for _ in range(2))
    for genre in range(labels.shape[1]):          # one (grid, films) matrix at a time
        decided = probabilities[:, genre][None] >= values[:, None]
        hits[:, genre] = (decided & truth[:, genre]).sum(1)
        false[:, genre] = (decided & ~truth[:, genre]).sum(1)              # (grid, genres)
    missed = truth.sum(0) - hits
    f1 = 2 * hits / np.maximum(2 * hits + false + missed, 1)
    present = truth.any(0)
    choice = np.full(labels.shape[1], int(np.flatnonzero(values == 0.5)[0]))
    choice[present] = np.argmax(f1[:, present], axis=0)
    if micro_weight > 0 and present.any():
        genres = np.arange(labels.shape[1])
        macro_share = np.where(present, f1, 0.0) / present.sum()  # macro F1 skips absent genres
        for _ in range(JOINT_ROUNDS):
            before = choice.copy()
            for genre in genres:
                hit, fp, fn = (counts[choice, genres].sum() - counts[choice[genre], genre]
                               + counts[:, genre] for counts in (hits, false, missed))
                micro = 2 * hit / np.maximum(2 * hit + fp + fn, 1)        # over the grid
                choice[genre] = int(np.argmax(macro_share[:, genre] + micro_weight * micro))
            if np.array_equal(choice, before):
                break
    return values[choice]


def decision_thresholds(tune: bool, probabilities: np.ndarray, labels: np.ndarray,
                        micro_weight: float = 0.0, grid: str = "linear") -> np.ndarray:
    """Tuned thresholds, or 0.5 for every genre when tuning is off."""
    if not tune:
        return np.full(labels.shape[1], 0.5)
    return tune_thresholds(probabilities, labels, micro_weight, grid)


def calibrate(probabilities: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Map each genre's threshold t to 0.5: [0, t] -> [0, 0.5], [t, 1] -> [0.5, 1]."""
    t = np.clip(np.asarray(thresholds, dtype=np.float64), 1e-6, 1 - 1e-6)
    below = 0.5 * probabilities / t
    above = 0.5 + 0.5 * (probabilities - t) / (1 - t)
    return np.where(probabilities < t, below, above).clip(0, 1)
