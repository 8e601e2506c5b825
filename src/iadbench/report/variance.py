"""Prompt-sampling variance (METHODS §12): how much the Bayes path's R noisy prompts move a result.

Per image, a method with prompt sampling records the std over the R samples of its image score
(``score_std``) and the mean over pixels of the per-pixel map std (``map_std_mean``); its
metrics carry their mean and max per category. Near-zero values everywhere would mean the
sampling is dead (σ too small to matter, or 0); the histogram shows how they spread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from iadbench.errors import CacheError

from .figures import new_figure, to_png
from .html import Page, paragraph, table
from .summary import rows

PER_IMAGE = ("score_std", "map_std_mean")
METRICS = ("score_std_mean", "score_std_max", "map_std_mean")
TABLE_COLUMNS = ("sample_id", "category", "label", "defect_type", "score", *PER_IMAGE)
NOTE = (
    "Methods that sample their prompts (Crane's Bayes path: R copies of every prompt's token "
    "embeddings with Gaussian noise before the text encoder) keep, per test image, the standard "
    "deviation over the R samples of its image score and the mean over pixels of its map's "
    "per-pixel standard deviation. The table gives their mean and max per category (the "
    "metrics.csv columns score_std_mean, score_std_max, map_std_mean); a sigma of 0 gives "
    "exactly 0. The histograms are per category, over its test images."
)


def variance_table(scores: pd.DataFrame, where: str) -> pd.DataFrame:
    """The per-image columns of a score table with prompt-sampling spread (CSV order)."""
    missing = [c for c in TABLE_COLUMNS if c not in scores.columns]
    if missing:
        raise CacheError(f"{where}: score table lacks {missing} (no prompt sampling?)")
    return scores[list(TABLE_COLUMNS)].reset_index(drop=True)


def histogram_figure(frame: pd.DataFrame, title: str) -> Figure:
    """Two histograms over images: the score std and the mean map std."""
    fig = new_figure(7.5, 2.8)
    axes = fig.subplots(1, 2)
    for ax, column, label in zip(
        axes, PER_IMAGE, ("image score std over samples", "mean map std over samples")
    ):
        values = frame[column].to_numpy(float)
        ax.hist(values, bins=min(20, max(len(values), 1)), color="tab:blue", alpha=0.8)
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylabel("images", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
        ax.set_title(f"mean {np.mean(values):.3g}, max {np.max(values):.3g}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return fig


def _fmt(value: object) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):.3g}"


def add_variance_section(
    page: Page, summary: pd.DataFrame, items: Sequence[Mapping[str, Any]]
) -> bool:
    """The "Prompt-sampling variance" section, when some result has sampling; whether added.

    ``items`` are the report's score items; those whose tables hold the per-image spread get a
    histogram.
    """
    if "score_std_mean" not in summary.columns:
        return False
    per_cat = rows(summary, "per_category")
    per_cat = per_cat[per_cat["score_std_mean"].notna()]
    if per_cat.empty:
        return False
    sec = page.section("Prompt-sampling variance")
    sec.add(paragraph(NOTE))
    shown = pd.DataFrame({c: per_cat[c].astype(str) for c in ("dataset", "method", "category")})
    for column in ("bayes_samples", "bayes_sigma"):
        if column in per_cat.columns:
            shown[column.removeprefix("bayes_")] = [_fmt(v) for v in per_cat[column]]
    headers = ("mean score std", "max score std", "mean map std")
    for column, header in zip(METRICS, headers):
        shown[header] = [_fmt(v) for v in per_cat.get(column, pd.Series(index=per_cat.index))]
    sec.add(table(shown, "Std over prompt samples, per category", numeric=shown.columns[3:]))
    sampled = set(zip(per_cat["dataset"], per_cat["method"], per_cat["category"]))
    for item in sorted(items, key=lambda i: (i["dataset"], i["method"], i["category"])):
        key = (str(item["dataset"]), str(item["method"]), str(item["category"]))
        if key not in sampled:
            continue
        name = " / ".join(key)
        frame = variance_table(pd.read_parquet(item["scores"]), str(item["scores"]))
        png = to_png(histogram_figure(frame, name))
        sec.add(page.image(f"variance {name}", png, f"{name}: std over prompt samples"))
    return True
