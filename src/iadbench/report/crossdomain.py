"""Cross-domain results: train-category × test-category AUROC, and the drop vs domain distance.

``cross_domain.csv`` has one row per (dataset, method, train_category, test_category); rows
with train == test are the in-domain reference. The drop of a cross pair is the in-domain image
AUROC of its test category minus the pair's AUROC, in percentage points: how much a model loses
by having been fitted on another category's normal data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import spearmanr

from iadbench.errors import CacheError

from .figures import annotate_cells, new_figure
from .summary import percent

REQUIRED = ("dataset", "method", "train_category", "test_category", "image_auroc")
DISTANCES = (("mmd", "MMD² (RBF)"), ("wasserstein", "sliced W1"), ("cosine", "cosine of means"))


def load_cross_domain(path: str | Path) -> pd.DataFrame:
    """Read and check ``cross_domain.csv``."""
    frame = pd.read_csv(path)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise CacheError(f"{path}: cross-domain table lacks columns {missing}")
    return frame


def distance_cols(frame: pd.DataFrame) -> list[str]:
    return [c for c, _ in DISTANCES if c in frame.columns and frame[c].notna().any()]


def with_drops(frame: pd.DataFrame) -> pd.DataFrame:
    """Cross pairs (train != test) with ``in_domain_auroc`` and ``drop`` (points; NaN: unknown)."""
    keys = ["dataset", "method", "test_category"]
    diagonal = frame[frame["train_category"] == frame["test_category"]]
    in_domain = diagonal.set_index(keys)["image_auroc"].rename("in_domain_auroc")
    cross = frame[frame["train_category"] != frame["test_category"]]
    cross = cross.join(in_domain, on=keys)
    return cross.assign(drop=100 * (cross["in_domain_auroc"] - cross["image_auroc"]))


def auroc_heatmap(frame: pd.DataFrame, title: str) -> Figure:
    """Image AUROC (%) with rows = training category, columns = test category."""
    table = frame.pivot_table(index="train_category", columns="test_category", values="image_auroc")
    cats = sorted(set(table.index) | set(table.columns))
    values = 100 * table.reindex(index=cats, columns=cats).to_numpy(dtype=float)
    side = 1.6 + 0.55 * len(cats)
    fig = new_figure(side + 1.2, side)
    ax = fig.add_subplot()
    vmin = min(50.0, float(np.nanmin(values)))
    image = ax.imshow(values, cmap="magma", vmin=vmin, vmax=100)
    annotate_cells(ax, values, vmin, 100, ".0f")
    ax.set_xticks(range(len(cats)), cats, rotation=45, fontsize=7)
    ax.set_yticks(range(len(cats)), cats, fontsize=7)
    ax.set(xlabel="test category", ylabel="training category")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="image AUROC (%)")
    return fig


def drop_scatter(drops: pd.DataFrame) -> Figure | None:
    """AUROC drop against each recorded distance, one colour per (dataset, method)."""
    cols = distance_cols(drops)
    drops = drops[drops["drop"].notna()]
    if not cols or drops.empty:
        return None
    fig = new_figure(3.6 * len(cols), 3.2)
    axes = fig.subplots(1, len(cols), squeeze=False)[0]
    labels = dict(DISTANCES)
    for ax, col in zip(axes, cols):
        for (dataset, method), group in drops.groupby(["dataset", "method"], sort=True):
            ax.scatter(group[col], group["drop"], s=18, label=f"{dataset}/{method}")
        rho = spearman(drops, col)
        rho_text = "n/a" if np.isnan(rho) else f"{rho:.2f}"
        ax.set_title(f"{labels[col]}: Spearman ρ = {rho_text}", fontsize=9)
        ax.set(xlabel=labels[col], ylabel="image AUROC drop (points)")
        ax.axhline(0, color="grey", lw=0.8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return fig


def spearman(drops: pd.DataFrame, col: str) -> float:
    """Rank correlation of drop and distance over the defined pairs (NaN if under 3 distinct)."""
    pairs = drops[["drop", col]].dropna()
    if len(pairs) < 3 or pairs[col].nunique() < 2 or pairs["drop"].nunique() < 2:
        return float("nan")
    return float(spearmanr(pairs[col], pairs["drop"]).statistic)


def drop_rows(drops: pd.DataFrame) -> pd.DataFrame:
    """Display frame: pairs sorted by drop, AUROCs in %, distances with 4 significant digits."""
    cols = distance_cols(drops)
    ordered = drops.sort_values("drop", ascending=False, na_position="last")
    shown = ordered[["dataset", "method", "train_category", "test_category"]].astype(str)
    shown["in-domain I-AUROC"] = [percent(v) for v in ordered["in_domain_auroc"]]
    shown["cross I-AUROC"] = [percent(v) for v in ordered["image_auroc"]]
    shown["drop (points)"] = ["n/a" if pd.isna(v) else f"{v:.1f}" for v in ordered["drop"]]
    labels = dict(DISTANCES)
    for col in cols:
        shown[labels[col]] = ["n/a" if pd.isna(v) else f"{v:.4g}" for v in ordered[col]]
    return shown
