"""Image-level ROC and precision-recall curves: one figure per (dataset, category)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import auc, precision_recall_curve, roc_curve

from .figures import new_figure


def roc_pr_figure(title: str, curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> Figure | None:
    """ROC (left) and PR (right), a line per method; ``curves`` maps method -> (labels, scores).

    Returns None when no method has both normal and anomalous images (curves are undefined).
    """
    usable = {m: (y, s) for m, (y, s) in sorted(curves.items()) if 0 < np.sum(y) < len(y)}
    if not usable:
        return None
    fig = new_figure(7.0, 3.2)
    roc_ax, pr_ax = fig.subplots(1, 2)
    for method, (labels, scores) in usable.items():
        fpr, tpr, _ = roc_curve(labels, scores)
        roc_ax.plot(fpr, tpr, label=f"{method} (AUROC {100 * auc(fpr, tpr):.1f})")
        precision, recall, _ = precision_recall_curve(labels, scores)
        pr_ax.plot(recall, precision, drawstyle="steps-post", label=method)
    roc_ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    prevalence = float(np.mean(next(iter(usable.values()))[0]))
    pr_ax.axhline(prevalence, color="grey", lw=0.8, ls="--")
    pr_ax.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    roc_ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    return fig
