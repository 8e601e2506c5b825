"""Summary figures: per-category bars, backbone × category heatmap, fusion ablation.

Each function takes the rows it plots and returns a figure (or None when there is nothing to
compare), so :mod:`iadbench.report.build` decides what goes in the page.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .figures import annotate_cells, new_figure
from .summary import backbone_label, metric_label

BAR_METRICS = ("image_auroc", "pixel_auroc", "aupro")


def _lower_limit(values: np.ndarray) -> float:
    """A y-axis floor (multiple of 10 %) that keeps differences near 100 % visible."""
    finite = values[np.isfinite(values)]
    return 0.0 if finite.size == 0 else max(0.0, math.floor((finite.min() - 5) / 10) * 10)


def category_bars(per_cat: pd.DataFrame, dataset: str, limits: list[float]) -> Figure | None:
    """One panel per metric (image AUROC, pixel AUROC, AUPRO): categories × methods bars."""
    metrics = [m for m in BAR_METRICS if m in per_cat.columns and per_cat[m].notna().any()]
    if not metrics:
        return None
    categories = sorted(per_cat["category"].unique())
    methods = sorted(per_cat["method"].unique())
    width = 0.8 / len(methods)
    x = np.arange(len(categories))
    panel = 1.2 + len(categories) * (0.3 + 0.2 * len(methods))
    if len(categories) <= 5:  # few categories: panels side by side
        fig = new_figure(panel * len(metrics), 2.8)
        axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    else:
        fig = new_figure(min(16.0, panel), 2.4 * len(metrics))
        axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics):
        table = per_cat.pivot_table(index="category", columns="method", values=metric)
        table = table.reindex(index=categories, columns=methods)
        values = 100 * table.to_numpy(dtype=float)
        for i, method in enumerate(methods):
            ax.bar(x + (i - (len(methods) - 1) / 2) * width, values[:, i], width, label=method)
        ax.set_ylim(_lower_limit(values), 100)
        ax.set_ylabel(f"{metric_label(metric, limits)} (%)", fontsize=8)
        ax.set_xticks(x, categories, rotation=30 if len(categories) > 6 else 0, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{dataset}: per-category results", fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(5, len(methods)), fontsize=7)
    return fig


def backbone_heatmap(per_cat: pd.DataFrame, title: str) -> Figure | None:
    """Image AUROC, rows = backbone, columns = category (+ their mean); None for one backbone.

    Several runs with the same backbone (seeds, fusion modes, ...) are averaged per cell.
    """
    frame = per_cat.assign(_backbone=backbone_label(per_cat))
    if frame["_backbone"].nunique() < 2 or not frame["image_auroc"].notna().any():
        return None
    table = frame.pivot_table(index="_backbone", columns="category", values="image_auroc")
    table["mean"] = table.mean(axis=1)
    values = 100 * table.to_numpy(dtype=float)
    fig = new_figure(2.5 + 0.7 * table.shape[1], 1.2 + 0.45 * table.shape[0])
    ax = fig.add_subplot()
    vmin = float(np.nanmin(values))
    image = ax.imshow(values, cmap="viridis", aspect="auto", vmin=vmin, vmax=100)
    annotate_cells(ax, values, vmin, 100, ".1f")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=30, fontsize=8)
    ax.set_yticks(range(table.shape[0]), table.index, fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="image AUROC (%)")
    return fig


def fusion_ablation(macro: pd.DataFrame, dataset: str) -> Figure | None:
    """Macro AUROC against feature dimension, one series per fusion mode; None if one mode.

    Runs sharing (fusion, backbone, dimension), e.g. seeds, become one point with a std bar.
    Without ``feature_dim`` the x axis is the list of runs.
    """
    if "fusion" not in macro.columns or macro["fusion"].dropna().nunique() < 2:
        return None
    frame = macro[macro["fusion"].notna()].assign(_backbone=backbone_label(macro))
    several = frame["_backbone"].nunique() > 1
    frame["_series"] = frame["fusion"].astype(str)
    if several:
        frame["_series"] += " · " + frame["_backbone"]
    has_dim = "feature_dim" in frame.columns and frame["feature_dim"].notna().all()
    frame["_x"] = frame["feature_dim"].astype(float) if has_dim else np.arange(len(frame))
    metrics = [m for m in ("image_auroc", "pixel_auroc") if m in frame and frame[m].notna().any()]
    fig = new_figure(4.2 * len(metrics), 3.2)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for name, series in frame.groupby("_series", sort=True):
            stats = series.groupby("_x")[metric].agg(["mean", "std"]).sort_index()
            ax.errorbar(
                stats.index,
                100 * stats["mean"],
                yerr=100 * stats["std"].fillna(0),
                marker="o",
                capsize=3,
                label=name,
            )
        if has_dim:
            ax.set_xlabel("feature dimension")
            if frame["_x"].max() > 8 * frame["_x"].min() > 0:
                ax.set_xscale("log")
        else:
            ax.set_xticks(frame["_x"], frame["method"], rotation=30, fontsize=7)
        ax.set_ylabel(f"macro {metric_label(metric, [])} (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, title="fusion", title_fontsize=7)
    fig.suptitle(f"{dataset}: layer-fusion ablation", fontsize=10)
    return fig
