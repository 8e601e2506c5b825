"""Per-defect-type image AUROC (METHODS.md §7.1): normal samples against one defect type only.

A pooled AUROC hides which kinds of defect a method misses; the weld data (one category, eleven
defect classes, no masks) is read this way in the literature. Each type's AUROC ranks the
category's normal samples against that type's samples alone.

Columns are ``auroc_<defect_type>`` and exist only for a category whose anomalous test samples
hold two or more defect types: with a single type the column would repeat ``image_auroc``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from .image import check_binary_scores, image_auroc

DEFECT_PREFIX = "auroc_"


def per_defect_auroc(
    labels: ArrayLike, scores: ArrayLike, defect_types: ArrayLike
) -> dict[str, float]:
    """AUROC of the normal samples vs each defect type's samples, keyed by type (sorted).

    The defect type of normal samples is ignored (whatever the layout calls them); a type's
    AUROC is NaN when there are no normal samples, as for any single-class ranking.
    """
    y, s = check_binary_scores(labels, scores)
    types = np.asarray(defect_types, dtype=object).astype(str)
    if types.shape != y.shape:
        raise ValueError(f"defect_types ({types.shape}) and labels ({y.shape}) differ in shape")
    out = {}
    for defect in sorted(set(types[y].tolist())):
        keep = ~y | (types == defect)
        out[defect] = image_auroc(y[keep], s[keep])
    return out


def defect_columns(
    labels: ArrayLike, scores: ArrayLike, defect_types: ArrayLike | None
) -> dict[str, float]:
    """``auroc_<type>`` for every defect type when there are two or more types, else ``{}``."""
    if defect_types is None:
        return {}
    aurocs = per_defect_auroc(labels, scores, defect_types)
    if len(aurocs) < 2:
        return {}
    return {f"{DEFECT_PREFIX}{defect}": value for defect, value in aurocs.items()}


def defect_cols(frame: pd.DataFrame) -> list[str]:
    """The per-defect columns of a summary, sorted by defect type."""
    return sorted(c for c in frame.columns if c.startswith(DEFECT_PREFIX))


def defect_markdown(summary: pd.DataFrame) -> str:
    """One Markdown table per (dataset, category) with per-defect AUROCs: method × type.

    Per-category rows only: a macro mean of a per-defect column averages the categories that
    have that type, which is in ``metrics.csv`` but rarely comparable across categories.
    ``""`` when no row has a per-defect AUROC.
    """
    cols = [c for c in defect_cols(summary) if summary[c].notna().any()]
    if not cols:
        return ""
    per_cat = summary
    if "average" in summary.columns:
        per_cat = summary[summary["average"] == "per_category"]
    parts = [
        "## Per defect type\n\nI-AUROC of the normal test samples against one defect type "
        "only (4 decimals); `all` is the pooled I-AUROC. Categories with two or more defect "
        "types.\n\n"
    ]
    for (dataset, category), group in per_cat.groupby(["dataset", "category"], sort=True):
        shown = [c for c in cols if group[c].notna().any()]
        if not shown:
            continue
        group = group.sort_values("method", kind="stable")
        table = pd.DataFrame({"method": group["method"].astype(str).to_numpy()})
        for col in ["image_auroc", *shown]:
            name = "all" if col == "image_auroc" else col.removeprefix(DEFECT_PREFIX)
            table[name] = ["n/a" if pd.isna(v) else f"{float(v):.4f}" for v in group[col]]
        parts.append(
            f"### {dataset} / {category}\n\n"
            + table.to_markdown(index=False, disable_numparse=True)
            + "\n\n"
        )
    return "".join(parts).rstrip("\n") + "\n"
