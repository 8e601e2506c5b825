"""Image-level metrics (METHODS.md §7.2-7.4): I-AUROC, I-AP, I-F1max.

Every function returns a Python float, and NaN when the labels hold a single class: such a
category has no defined ranking metric, and a made-up 0.5 or 1.0 would bias the macro mean.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score


def check_binary_scores(labels: ArrayLike, scores: ArrayLike, what: str = "scores"):
    """Validate 1-D binary labels and finite scores of the same length; return them as arrays."""
    y = np.asarray(labels)
    s = np.asarray(scores)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(f"labels and {what} must be 1-D, got shapes {y.shape} and {s.shape}")
    if y.shape[0] != s.shape[0]:
        raise ValueError(f"labels ({y.shape[0]}) and {what} ({s.shape[0]}) differ in length")
    if y.shape[0] == 0:
        raise ValueError(f"labels and {what} are empty")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            bad = np.unique(y[~np.isin(y, (0, 1))])[:5]
            raise ValueError(f"labels must be 0/1 or bool, found values {bad.tolist()}")
        y = y.astype(bool)
    if s.dtype == bool or not np.issubdtype(s.dtype, np.number):
        s = s.astype(np.float64)
    if not np.isfinite(s).all():
        raise ValueError(f"{what} contain NaN or Inf ({int((~np.isfinite(s)).sum())} values)")
    return y, s


def _single_class(y: np.ndarray) -> bool:
    return bool(y.all() or not y.any())


def f1_max_from_pr(precision: np.ndarray, recall: np.ndarray) -> float:
    """Max of 2PR/(P+R) over the points of a PR curve; points with P+R = 0 are ignored."""
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = 2.0 * precision * recall / (precision + recall)
    return float(np.nanmax(f1))


def image_auroc(labels: ArrayLike, scores: ArrayLike) -> float:
    """ROC AUC of image scores (sklearn; ties count half). NaN for single-class labels."""
    y, s = check_binary_scores(labels, scores)
    return float("nan") if _single_class(y) else float(roc_auc_score(y, s))


def image_ap(labels: ArrayLike, scores: ArrayLike) -> float:
    """Average precision (sklearn step-wise AP, no interpolation). NaN for single-class labels."""
    y, s = check_binary_scores(labels, scores)
    return float("nan") if _single_class(y) else float(average_precision_score(y, s))


def f1_max(labels: ArrayLike, scores: ArrayLike) -> float:
    """Max F1 over all thresholds of sklearn's precision_recall_curve, NaN points ignored.

    Plain definition (no Dinomaly epsilon, last point kept). NaN for single-class labels.
    """
    y, s = check_binary_scores(labels, scores)
    if _single_class(y):
        return float("nan")
    precision, recall, _ = precision_recall_curve(y, s)
    return f1_max_from_pr(precision, recall)
