"""Latency section: ``latency.csv`` as tables, and mean latency against macro image AUROC.

Latency comes from its own opt-in step (:mod:`iadbench.pipeline.latency`), never from
``metrics.csv``: timings vary between runs and machines, metrics must not. Dataset-level numbers
are macro means over categories, like the metrics they are set beside.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from iadbench.errors import CacheError

from .figures import new_figure, to_png
from .html import Page, paragraph, table
from .summary import rows
from .tables import text

REQUIRED = (
    "dataset", "method", "category", "kind", "n_images", "mean_ms", "p95_ms", "device",
    "batch_size",
)  # fmt: skip
HEADERS = {
    "method": "method",
    "kind": "kind",
    "category": "category",
    "n_images": "n images",
    "mean_ms": "mean ms",
    "p95_ms": "p95 ms",
    "device": "device",
    "batch_size": "batch size",
}
NOTE = (
    "Latency is measured in its own step, not part of metrics.csv: per image, one at a time "
    "(batch size 1) after a warm-up image, with the model already loaded, on the first test "
    "images of each category. A cascade is not timed itself: its time per image is the gate's "
    "plus, for the images it routed to the heatmap method, that method's. Per-dataset numbers "
    "are macro means over categories."
)


def load_latency(path: str | Path) -> pd.DataFrame:
    """Read ``latency.csv``; an empty file (nothing timed) gives an empty frame."""
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=list(REQUIRED))
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise CacheError(f"{path}: latency table lacks columns {missing}")
    return frame


def ms(value: object) -> str:
    """Milliseconds with two decimals; ``n/a`` when missing."""
    if value is None or pd.isna(value):
        return "n/a"
    return f"{float(value):.2f}"


def method_latency(latency: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, method): macro means over categories of ``mean_ms`` and ``p95_ms``."""
    if latency.empty:
        return pd.DataFrame(columns=["dataset", "method", "mean_ms", "p95_ms", "categories"])
    return (
        latency.groupby(["dataset", "method"], sort=True)
        .agg(
            mean_ms=("mean_ms", "mean"), p95_ms=("p95_ms", "mean"), categories=("category", "size")
        )
        .reset_index()
    )


def with_auroc(per_method: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Attach each method's macro image AUROC from the summary (NaN when it has none)."""
    macro = rows(summary, "macro")
    if "image_auroc" not in macro.columns:
        return per_method.assign(image_auroc=np.nan)
    auroc = macro[["dataset", "method", "image_auroc"]].drop_duplicates(["dataset", "method"])
    return per_method.merge(auroc, on=["dataset", "method"], how="left")


def latency_table(frame: pd.DataFrame, dataset: str) -> str:
    """One dataset's rows: method, kind, category, n images, mean/p95 ms, device, batch size."""
    shown = frame.sort_values(["method", "category"])[list(HEADERS)]
    cells = pd.DataFrame(
        {
            label: [ms(v) for v in shown[col]] if col.endswith("_ms") else shown[col].map(text)
            for col, label in HEADERS.items()
        }
    )
    caption = f"{dataset}: latency per image (ms), measured in its own step"
    return table(cells, caption, numeric=["n images", "mean ms", "p95 ms", "batch size"])


def _whisker(frame: pd.DataFrame) -> np.ndarray:
    """Asymmetric error bars from the mean up to the p95 (no lower arm)."""
    upper = (frame["p95_ms"] - frame["mean_ms"]).clip(lower=0).to_numpy(float)
    return np.vstack([np.zeros_like(upper), upper])


def tradeoff_figure(per_method: pd.DataFrame, dataset: str) -> Figure | None:
    """Bars of mean latency (whisker up to p95) and, where known, latency vs macro I-AUROC.

    ``per_method`` is one dataset's rows of :func:`method_latency` with ``image_auroc``.
    """
    if per_method.empty:
        return None
    frame = per_method.sort_values(["mean_ms", "method"]).reset_index(drop=True)
    scored = frame[frame["image_auroc"].notna()]
    panels = 2 if not scored.empty else 1
    fig = new_figure(1.6 + 3.2 * panels + 0.25 * len(frame), 3.2)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    x = np.arange(len(frame))
    bars = axes[0]
    bars.bar(x, frame["mean_ms"], color="tab:blue", label="mean")
    bars.errorbar(x, frame["mean_ms"], yerr=_whisker(frame), fmt="none", ecolor="k", capsize=4)
    bars.scatter(x, frame["p95_ms"], marker="_", s=120, color="k", zorder=3, label="p95")
    bars.set_xticks(x, frame["method"], rotation=30 if len(frame) > 4 else 0, fontsize=8)
    bars.set_ylabel("ms per image")
    bars.set_title("mean latency (whisker: p95)", fontsize=9)
    bars.legend(fontsize=7)
    bars.grid(axis="y", alpha=0.3)
    if panels == 2:
        ax = axes[1]
        ax.errorbar(
            scored["mean_ms"],
            100 * scored["image_auroc"],
            xerr=_whisker(scored),
            fmt="o",
            capsize=3,
        )
        # Methods on the same point (a cascade that never called its heatmap method and its
        # gate) share one label instead of overprinting.
        for (x, y), group in scored.groupby(["mean_ms", "image_auroc"], sort=True):
            names = ", ".join(sorted(map(str, group["method"])))
            ax.annotate(names, (x, 100 * y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        positive = scored["mean_ms"][scored["mean_ms"] > 0]
        if len(positive) > 1 and positive.max() > 30 * positive.min():
            ax.set_xscale("log")
        ax.set(xlabel="mean ms per image (whisker: p95)", ylabel="macro I-AUROC (%)")
        ax.set_title("speed vs quality", fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{dataset}: latency vs macro image AUROC", fontsize=10)
    return fig


def add_latency_section(page: Page, summary: pd.DataFrame, latency: pd.DataFrame) -> None:
    """The "Latency" section: the note, then per dataset its table and trade-off figure."""
    sec = page.section("Latency")
    sec.add(paragraph(NOTE))
    if latency.empty:
        sec.add(paragraph("latency.csv holds no rows: nothing was timed.", note=True))
        return
    per_method = with_auroc(method_latency(latency), summary)
    for dataset, group in latency.groupby("dataset", sort=True):
        sec.add(latency_table(group, str(dataset)))
        fig = tradeoff_figure(per_method[per_method["dataset"] == dataset], str(dataset))
        if fig is not None:
            caption = (
                f"{dataset}: mean latency per image (macro over categories; whisker up to p95) "
                "against macro I-AUROC from metrics.csv. Latency is measured in its own step and "
                "is not part of metrics.csv."
            )
            sec.add(page.image(f"latency {dataset}", to_png(fig), caption))
