"""Per-category decision thresholds tuned on held-out scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)


def f1_at(y: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    """F1 of one category when predicting ``scores >= threshold``."""
    pred = scores >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def tune_thresholds(
    y_true: np.ndarray, scores: np.ndarray, grid: Sequence[float] = DEFAULT_GRID, default: float = 0.5
) -> np.ndarray:
    """The threshold per column that maximises F1 on held-out scores.

    Ties go to the threshold closest to ``default``; a column with no positives keeps ``default``.

    Args:
        y_true: (n, k) binary gold matrix of held-out passages (never the test set).
        scores: (n, k) probabilities for the same passages.
    """
    y_true = np.asarray(y_true)
    scores = np.asarray(scores)
    out = np.full(y_true.shape[1], default, dtype=np.float64)
    for j in range(y_true.shape[1]):
        if y_true[:, j].sum() == 0:
            continue
        best = max(grid, key=lambda t: (f1_at(y_true[:, j], scores[:, j], t), -abs(t - default)))
        out[j] = float(best)
    return out
