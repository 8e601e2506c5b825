"""Result tables: macro/micro headline, per category, seeds (mean ± std), provenance.

All metrics are shown in % with one decimal, as published tables are; AUPRO headers name their
FPR limit, and a column gives it per row when runs used different limits.
"""

from __future__ import annotations

import pandas as pd

from .html import table
from .summary import (
    backbone_label,
    config_cols,
    fpr_limits,
    mean_std,
    metric_cols,
    metric_label,
    percent,
    rows,
    seed_groups,
)


def _eval_size(frame: pd.DataFrame) -> pd.Series:
    if "eval_height" not in frame.columns or "eval_width" not in frame.columns:
        return pd.Series("n/a", index=frame.index)
    no_maps = (
        frame["pixel_auroc"].isna()
        if "pixel_auroc" in frame.columns
        else pd.Series(False, index=frame.index)
    )
    return pd.Series(
        [
            f"{int(h)}×{int(w)}" if pd.notna(h) and pd.notna(w) else "no maps" if m else "varies"
            for h, w, m in zip(frame["eval_height"], frame["eval_width"], no_maps)
        ],
        index=frame.index,
    )


def text(value: object) -> str:
    """A table cell: ``n/a`` for missing, integral floats without ``.0`` (dims, seeds)."""
    if value is None or pd.isna(value):
        return "n/a"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def category_counts(summary: pd.DataFrame) -> dict[tuple[str, str], int]:
    """Number of per-category rows behind each (dataset, method)'s macro mean."""
    per_cat = rows(summary, "per_category")
    return per_cat.groupby(["dataset", "method"]).size().to_dict()


def metrics_table(frame: pd.DataFrame, id_cols: list[str], caption: str, limits: list) -> str:
    """Identifier columns as text, then every metric present in % (1 decimal)."""
    shown = pd.DataFrame({c: frame[c].astype(str) for c in id_cols})
    cols = metric_cols(frame)
    labels = [metric_label(c, limits) for c in cols]
    for col, label in zip(cols, labels):
        shown[label] = [percent(v) for v in frame[col]]
    if len(limits) > 1:
        shown["FPR limit"] = [f"{v:g}" for v in frame["fpr_limit"]]
    return table(shown, caption, numeric=labels)


def headline_tables(summary: pd.DataFrame) -> list[str]:
    """Macro (the headline, as papers report) and micro tables per (dataset, method)."""
    limits = fpr_limits(summary)
    counts = category_counts(summary)
    out = []
    for average, caption in (
        ("macro", "Macro mean over categories (headline; the papers' convention), %"),
        ("micro", "Micro: all images/pixels of a dataset pooled (not comparable to macro), %"),
    ):
        frame = rows(summary, average)
        if frame.empty:
            continue
        frame = frame.assign(
            backbone=backbone_label(frame),
            categories=[counts.get((d, m), 0) for d, m in zip(frame["dataset"], frame["method"])],
            resolution=_eval_size(frame),
        )
        ids = ["dataset", "method", "backbone", "categories", "resolution"]
        out.append(metrics_table(frame, ids, caption, limits))
    return out


def category_table(summary: pd.DataFrame) -> str:
    """Every (dataset, method, category) row."""
    frame = rows(summary, "per_category")
    return metrics_table(
        frame, ["dataset", "category", "method"], "Per category, %", fpr_limits(summary)
    )


def seed_table(summary: pd.DataFrame) -> str | None:
    """Macro rows that differ only by seed, as mean ± sample std; None if there are none."""
    groups = seed_groups(summary)
    if not groups:
        return None
    limits = fpr_limits(summary)
    cols = metric_cols(summary)
    records = []
    for group in groups:
        first = group.iloc[0]
        record = {
            "dataset": first["dataset"],
            "config": str(first["base"]) if "base" in group.columns else first["method"],
            "backbone": backbone_label(group).iloc[0],
            "methods": ", ".join(group["method"].astype(str)),
            "seeds": ", ".join(text(s) for s in group["seed"]),
        }
        record.update({metric_label(c, limits): mean_std(group[c]) for c in cols})
        records.append(record)
    frame = pd.DataFrame(records)
    caption = "Macro means over seeds: mean ± sample standard deviation (n−1), %"
    return table(frame, caption, numeric=[metric_label(c, limits) for c in cols])


def provenance_table(summary: pd.DataFrame) -> str | None:
    """Which configuration produced each (dataset, method): the config columns recorded."""
    present = [*config_cols(summary), *(["seed"] if "seed" in summary.columns else [])]
    if not present:
        return None
    per_cat = rows(summary, "per_category")
    source = per_cat if not per_cat.empty else summary
    frame = source.drop_duplicates(["dataset", "method"])[["dataset", "method", *present]]
    shown = frame.sort_values(["dataset", "method"]).map(text)
    caption = "Provenance: the method entry, backbone and weights identity behind every row"
    return table(shown, caption)
