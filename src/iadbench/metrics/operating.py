"""Operating points: a decision threshold chosen on ``val`` and applied unchanged to ``test``.

A threshold ``t`` predicts "anomalous" for ``score >= t``. It is chosen on validation scores
(never on the reported split), by maximum F1 or as the highest threshold that reaches a target
recall; the reported accuracy/precision/recall/F1 are those of the test split at that ``t``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .image import check_binary_scores

OPERATING_COLS = ("threshold", "accuracy", "precision", "recall", "f1")


def _candidates(y: np.ndarray, s: np.ndarray):
    """Every distinct score as a threshold, with the counts it predicts (descending t)."""
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s_sorted) - 1]
    tp = np.cumsum(y_sorted)[last]
    predicted = last + 1
    return s_sorted[last], tp, predicted


def threshold_max_f1(labels: ArrayLike, scores: ArrayLike) -> float:
    """The threshold of maximum F1 (the highest one among ties); NaN without anomalies."""
    y, s = check_binary_scores(labels, scores)
    if not y.any():
        return float("nan")
    thresholds, tp, predicted = _candidates(y, s)
    f1 = 2.0 * tp / (predicted + y.sum())
    return float(thresholds[int(np.argmax(f1))])


def threshold_for_recall(labels: ArrayLike, scores: ArrayLike, recall: float) -> float:
    """The highest threshold whose recall is at least ``recall``; NaN without anomalies."""
    y, s = check_binary_scores(labels, scores)
    if not y.any():
        return float("nan")
    thresholds, tp, _ = _candidates(y, s)
    reached = np.flatnonzero(tp / y.sum() >= recall - 1e-12)
    return float(thresholds[int(reached[0])])


def at_threshold(labels: ArrayLike, scores: ArrayLike, threshold: float) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of ``score >= threshold`` (NaN where undefined)."""
    y, s = check_binary_scores(labels, scores)
    if not np.isfinite(threshold):
        return dict.fromkeys(OPERATING_COLS, float("nan"))
    pred = s >= threshold
    tp = float((pred & y).sum())
    precision = tp / pred.sum() if pred.any() else float("nan")
    recall = tp / y.sum() if y.any() else float("nan")
    f1 = 2.0 * tp / (pred.sum() + y.sum()) if (pred.any() or y.any()) else float("nan")
    return {
        "threshold": float(threshold),
        "accuracy": float((pred == y).mean()),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }
