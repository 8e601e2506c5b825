"""Across-category aggregation: macro (headline, §7.1) and micro (pooled) kept apart.

Papers report the macro mean: each metric per category, then averaged. Micro pools all images
and pixels of a dataset and is a different, usually lower, number (score scales differ across
categories). Every summary row carries an ``average`` column so the two are never confused.

Per-defect AUROCs (``auroc_<type>``) exist only where a category has two or more defect types;
a macro row averages each over the categories that have it, and micro rows leave them out
(pooling one type's samples across categories would mix unrelated defects and normals).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from .defects import DEFECT_PREFIX, defect_cols, defect_markdown
from .evaluate import METRIC_COLS, evaluate_category
from .pixel import Maps, Masks

ID_COLS = ("dataset", "method", "category")
COUNT_COLS = ("n_images", "n_anomalous", "n_normal", "n_pixel_images", "masks_cut")
INFO_COLS = (
    "fpr_limit", *COUNT_COLS, "eval_height", "eval_width", "feature_dim", "seed", "threshold",
    "masks_cut", "mask_pixels_cut",
)  # fmt: skip
# Averaged over categories like the ranking metrics: the operating point at each category's own
# val-chosen threshold, the cascade's heatmap call rate, calibration errors.
DECISION_COLS = (
    "accuracy", "precision", "recall", "f1", "heatmap_call_rate", "ece", "ece_uncalibrated"
)  # fmt: skip
# Spread over a method's prompt samples (Crane's Bayes path), averaged over categories too.
VARIANCE_COLS = ("score_std_mean", "score_std_max", "map_std_mean")
MACRO, MICRO = "macro_mean", "micro"


def macro_mean(rows: pd.DataFrame, metric_cols: Iterable[str]) -> dict[str, float]:
    """Mean of each metric over the rows (categories), ignoring NaN; NaN if all are NaN."""
    out = {}
    for col in metric_cols:
        values = pd.to_numeric(rows[col], errors="coerce").to_numpy(dtype=float)
        values = values[~np.isnan(values)]
        out[col] = float(values.mean()) if values.size else float("nan")
    return out


def _metric_cols(df: pd.DataFrame) -> list[str]:
    """The metric columns present (provenance columns may be numeric too: they are not metrics)."""
    named = [c for c in (*METRIC_COLS, *DECISION_COLS, *VARIANCE_COLS) if c in df.columns]
    return named + [
        c for c in df.columns if c.startswith(("ece_", DEFECT_PREFIX)) and c not in named
    ]


def _common(series: pd.Series) -> Any:
    """The single value shared by all rows (e.g. fpr_limit, eval size), else None."""
    values = series.dropna().unique()
    return values[0] if len(values) == 1 and series.notna().all() else None


def _macro_row(group: pd.DataFrame, metric_cols: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {c: _common(group[c]) for c in group.columns}
    row.update(macro_mean(group, metric_cols))
    for col in COUNT_COLS:
        if col in group.columns:
            row[col] = int(pd.to_numeric(group[col]).sum())
    row["category"] = MACRO
    return row


def summarise(per_category: pd.DataFrame, micro: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-category rows, then per (dataset, method) a macro_mean row and the micro row(s).

    Order: dataset, method (sorted); inside, categories alphabetically, then macro, then micro.
    Column ``average`` is ``per_category`` / ``macro`` / ``micro``. The macro row averages the
    metric columns ignoring NaN, sums the n_* counts, and keeps other columns only if shared.
    Per-defect columns come last, sorted by defect type.
    """
    missing = [c for c in ID_COLS if c not in per_category.columns]
    if missing:
        raise ValueError(f"per_category lacks columns {missing}")
    reserved = per_category["category"].isin([MACRO, MICRO])
    if reserved.any():
        raise ValueError(f"per_category already holds {MACRO!r}/{MICRO!r} rows")
    per_category = per_category.drop(columns="average", errors="ignore")
    metric_cols = _metric_cols(per_category)
    micro = None if micro is None else micro.drop(columns="average", errors="ignore")
    keys = set(map(tuple, per_category[["dataset", "method"]].to_numpy().tolist()))
    if micro is not None:
        keys |= set(map(tuple, micro[["dataset", "method"]].to_numpy().tolist()))
    pieces = []
    for dataset, method in sorted(keys, key=lambda k: (str(k[0]), str(k[1]))):
        sel = (per_category["dataset"] == dataset) & (per_category["method"] == method)
        group = per_category[sel].sort_values("category", kind="stable")
        if len(group):
            pieces.append(group.assign(average="per_category"))
            pieces.append(pd.DataFrame([_macro_row(group, metric_cols)]).assign(average="macro"))
        if micro is not None:
            msel = (micro["dataset"] == dataset) & (micro["method"] == method)
            if msel.any():
                pieces.append(micro[msel].assign(average="micro"))
    out = pd.concat(pieces, ignore_index=True)
    first = ["dataset", "method", "category", "average"]
    last = defect_cols(out)
    return out[first + [c for c in out.columns if c not in first and c not in last] + last]


def micro_metrics(
    labels: Sequence[ArrayLike],
    image_scores: Sequence[ArrayLike],
    masks: Sequence[Masks | None] | None,
    maps: Sequence[Maps] | None,
    fpr_limit: float = 0.3,
) -> dict[str, Any]:
    """Micro metrics: :func:`evaluate_category` on all categories of a dataset pooled together.

    Each argument is a sequence with one entry per category (that category's labels, scores,
    masks, maps). Images and pixels are pooled across categories, so one threshold ranks them
    all; this is NOT the paper-style (macro) number. If ``masks`` is None or any category has
    no masks, pixel metrics are NaN (pooling would otherwise count its defects as normal).
    """
    if len(labels) != len(image_scores):
        raise ValueError(f"{len(labels)} label arrays but {len(image_scores)} score arrays")
    pooled_labels = np.concatenate([np.asarray(y).ravel() for y in labels])
    pooled_scores = np.concatenate([np.asarray(s, dtype=float).ravel() for s in image_scores])
    pooled_maps = None if maps is None else [m for cat in maps for m in cat]
    pooled_masks = None
    if masks is not None and all(cat is not None for cat in masks):
        pooled_masks = [m for cat in masks for m in cat]
    if pooled_maps is None:
        pooled_masks = None
    return evaluate_category(pooled_labels, pooled_scores, pooled_masks, pooled_maps, fpr_limit)


# The headline table: these metrics, then the setup columns that have a value somewhere.
HEADLINE_METRICS = ("image_auroc", "pixel_auroc", "aupro", "f1", "heatmap_call_rate")
HEADLINE_LABELS = {
    "image_auroc": "I-AUROC",
    "pixel_auroc": "P-AUROC",
    "aupro": "AUPRO",
    "f1": "F1@val-thr",
    "heatmap_call_rate": "heatmap calls",
}
ALWAYS_SHOWN = ("image_auroc", "pixel_auroc", "aupro")
CSV_ONLY = frozenset({"base", "grid", "weights", "backbone_model"})


def _fmt(value: Any, is_metric: bool) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return "n/a"
    if isinstance(value, (float, np.floating)):
        if is_metric:
            return f"{value:.4f}"
        return str(int(value)) if float(value).is_integer() else f"{value:g}"
    return str(value)


def headline_columns(summary_df: pd.DataFrame) -> list[str]:
    """Identifiers, the headline metrics that have a value, then the setup columns that apply.

    Setup columns are what methods' ``describe()`` adds (backbone, bank, fusion, seed...): a
    column is shown when at least one row has a value. I-AUROC is always shown; pixel metrics
    only where some row has them (kinds without maps have none).
    """
    skip = set(ID_COLS) | set(_metric_cols(summary_df)) | set(INFO_COLS) | CSV_ONLY
    skip |= {"average", "kind", "threshold_from"}
    setup = [
        c
        for c in summary_df.columns
        if (c not in skip or c in ("feature_dim", "seed"))
        and summary_df[c].notna().any()
        and (summary_df[c].astype(str) != "").any()
    ]
    ids = ["dataset", "method"] + (["kind"] if "kind" in summary_df.columns else []) + ["category"]
    shown = [
        c
        for c in HEADLINE_METRICS
        if c in summary_df.columns and (c == "image_auroc" or summary_df[c].notna().any())
    ]
    return ids + shown + setup


def _markdown_table(summary_df: pd.DataFrame, labels: dict[str, str]) -> str:
    columns = headline_columns(summary_df)
    table = pd.DataFrame(
        {labels.get(c, c): [_fmt(v, c in HEADLINE_METRICS) for v in summary_df[c]] for c in columns}
    )
    if "average" in summary_df.columns:
        pooled = summary_df["average"].isin(["macro", "micro"]).to_numpy()
        table.loc[pooled, "category"] = "**" + table.loc[pooled, "category"] + "**"
    return table.to_markdown(index=False, disable_numparse=True) + "\n"


def to_markdown(summary_df: pd.DataFrame) -> str:
    """Compact Markdown headline of a :func:`summarise` result (the CSV keeps every column).

    One table per method kind, each with only the columns that apply to that kind. Metrics with
    4 decimals; n/a = undefined or not applicable. Macro and micro rows have their category in
    bold and are named by the ``average`` column. Per-defect AUROCs, where any row has them,
    follow in their own tables (:func:`iadbench.metrics.defects.defect_markdown`).
    """
    limits = sorted({float(v) for v in summary_df.get("fpr_limit", pd.Series()).dropna()})
    labels = {**HEADLINE_LABELS}
    if len(limits) == 1:
        labels["aupro"] = f"AUPRO@{limits[0]:g}"
    header = (
        "Test split. Metrics are fractions in [0, 1] (4 decimals; n/a = undefined, e.g. no "
        "anomalies, or not applicable to the method). **macro_mean** = mean over categories "
        "ignoring n/a (the headline, as in papers); **micro** = all images/pixels of the "
        "dataset pooled. AUPRO@x integrates the PRO curve up to FPR x. F1@val-thr: F1 at the "
        "threshold chosen on the val split (or the method's own fitted one). Every column, "
        "counts and provenance included, is in metrics.csv.\n\n"
    )
    if "kind" not in summary_df.columns or summary_df["kind"].nunique(dropna=False) < 2:
        parts = [header, _markdown_table(summary_df, labels)]
    else:
        parts = [header]
        for kind in dict.fromkeys(summary_df["kind"]):
            rows = summary_df[summary_df["kind"] == kind].reset_index(drop=True)
            parts.append(f"## {kind}\n\n" + _markdown_table(rows, labels) + "\n")
    text = "".join(parts)
    if defects := defect_markdown(summary_df):
        text = text.rstrip("\n") + "\n\n" + defects
    return text
