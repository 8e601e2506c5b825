"""Cascade section: how a gate -> heatmap cascade chose its band, and what it did on test.

Per cascade and dataset: the val sweep (heatmap call rate against F1 for every (t_low, t_high),
the chosen pair marked), the test confusion matrix at the operating threshold recorded in
``metrics.csv``, the gate alone / heatmap method alone / cascade side by side, and a few test
images with their routing beside the heatmap method's map. The cascade has no maps of its own
(:mod:`iadbench.methods.cascade`), so the overlay is always the heatmap method's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from iadbench.data.images import Geometry
from iadbench.errors import CacheError

from .cascade_samples import MAX_SAMPLES, sample_figure, sample_rows
from .figures import new_figure, to_png
from .html import Page, Section, esc, paragraph, table
from .items import index_items, load_item
from .latency import method_latency, ms
from .summary import percent, rows

SWEEP_REQUIRED = (
    "dataset", "method", "category", "t_low", "t_high", "heatmap_call_rate", "f1",
)  # fmt: skip
INTRO = (
    "A cascade keeps the gate's calibrated probability when it is below t_low or above t_high "
    "and asks the heatmap method (its score calibrated on val) for the images in between. "
    "t_low/t_high and the operating threshold are chosen on val and applied unchanged to test. "
    "Heatmap call rate = share of images routed to the heatmap method. The cascade has no "
    "pixel maps of its own: its pixel metrics are n/a; see the heatmap method's row."
)


def flags(values: pd.Series) -> pd.Series:
    """Booleans from a CSV column (True/False, 1/0, or their strings); missing is False."""
    return values.map(lambda v: str(v).strip().lower() in {"true", "1", "1.0"})


def load_sweeps(path: str | Path) -> pd.DataFrame:
    """Read ``cascade_sweep.csv``; ``chosen``/``degenerate_scores`` become booleans."""
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame(columns=list(SWEEP_REQUIRED))
    missing = [c for c in SWEEP_REQUIRED if c not in frame.columns]
    if missing:
        raise CacheError(f"{path}: sweep table lacks columns {missing}")
    for col in ("chosen", "degenerate_scores"):
        frame[col] = flags(frame[col]) if col in frame.columns else False
    return frame


def confusion(labels: Sequence, scores: Sequence, threshold: float) -> dict[str, int] | None:
    """TN, FP, FN, TP of ``score >= threshold`` (the operating-point rule).

    None when the threshold is undefined (NaN: no anomalies on val, nothing to count against).
    """
    y = np.asarray(labels).astype(int) == 1
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape:
        raise ValueError(f"{y.shape} labels but {s.shape} scores")
    if threshold is None or not math.isfinite(float(threshold)):
        return None
    pred = s >= float(threshold)
    return {
        "TN": int((~pred & ~y).sum()),
        "FP": int((pred & ~y).sum()),
        "FN": int((~pred & y).sum()),
        "TP": int((pred & y).sum()),
    }


@dataclass(frozen=True)
class SweepSeries:
    """One category's val sweep: every (t_low, t_high) point and the chosen one."""

    category: str
    points: pd.DataFrame
    chosen: pd.Series | None
    degenerate: bool

    @property
    def label(self) -> str | None:
        """The chosen pair as ``t_low/t_high``, the annotation on the figure."""
        if self.chosen is None:
            return None
        return f"{float(self.chosen['t_low']):g}/{float(self.chosen['t_high']):g}"


def sweep_series(sweeps: pd.DataFrame, dataset: str, method: str) -> list[SweepSeries]:
    """The sweep points of one (dataset, cascade), per category, with the flagged pair."""
    sel = (sweeps["dataset"].astype(str) == dataset) & (sweeps["method"].astype(str) == method)
    out = []
    for category, group in sweeps[sel].groupby("category", sort=True):
        group = group.sort_values(["t_low", "t_high"], kind="stable").reset_index(drop=True)
        picked = group[group["chosen"]]
        out.append(
            SweepSeries(
                str(category),
                group,
                picked.iloc[0] if len(picked) else None,
                bool(group["degenerate_scores"].any()),
            )
        )
    return out


def sweep_figure(series: list[SweepSeries], title: str) -> Figure | None:
    """Small multiples, one per category: call rate (x) vs val F1 (y), chosen pair starred."""
    if not series:
        return None
    ncols = min(4, len(series))
    nrows = math.ceil(len(series) / ncols)
    fig = new_figure(max(3.6, 0.6 + 2.6 * ncols), 1.0 + 2.3 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True).ravel()
    for ax, item in zip(axes, series):
        pts = item.points
        ax.scatter(
            100 * pts["heatmap_call_rate"],
            100 * pts["f1"],
            s=16,
            alpha=0.5,
            marker="x" if item.degenerate else "o",
            color="tab:red" if item.degenerate else "tab:blue",
            label="(t_low, t_high)",
        )
        if item.chosen is not None:
            x, y = 100 * float(item.chosen["heatmap_call_rate"]), 100 * float(item.chosen["f1"])
            ax.scatter([x], [y], marker="*", s=180, color="gold", edgecolors="k", zorder=3,
                       label="chosen")  # fmt: skip
            right = x > 60
            ax.annotate(
                item.label,
                (x, y),
                textcoords="offset points",
                xytext=(-8 if right else 8, 6),
                ha="right" if right else "left",
                fontsize=7,
            )
        warn = " (degenerate val scores)" if item.degenerate else ""
        ax.set_title(item.category + warn, fontsize=8, color="tab:red" if warn else "black")
        ax.set_xlim(-5, 105)
        ax.margins(y=0.15)  # room for the annotation above the star
        ax.grid(alpha=0.3)
    for ax in axes[len(series) :]:
        ax.set_axis_off()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=7)
    for k, ax in enumerate(axes[: len(series)]):
        if k + ncols >= len(series):  # nothing below it: label the x axis
            ax.set_xlabel("heatmap call rate on val (%)", fontsize=8)
            ax.tick_params(labelbottom=True)
        if k % ncols == 0:
            ax.set_ylabel("val F1 at the pair's threshold (%)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def confusion_rows(cascade_rows: pd.DataFrame, tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per category: counts at the summary's threshold, the summary's operating metrics.

    ``tables`` maps category -> the cascade's test score table (counts are n/a without one).
    ``consistent`` is False when accuracy from the counts differs from the summary's (the
    score file and metrics.csv then come from different runs).
    """
    records = []
    for _, row in cascade_rows.sort_values("category").iterrows():
        threshold = row.get("threshold", float("nan"))
        scores = tables.get(str(row["category"]))
        counts = (
            confusion(scores["label"], scores["score"], threshold) if scores is not None else None
        )
        record = {"category": str(row["category"]), "threshold": threshold}
        record.update(counts or dict.fromkeys(("TN", "FP", "FN", "TP")))
        for col in ("accuracy", "precision", "recall", "f1", "heatmap_call_rate"):
            record[col] = row.get(col, float("nan"))
        consistent = True
        if counts is not None and pd.notna(record["accuracy"]):
            accuracy = (counts["TP"] + counts["TN"]) / max(1, sum(counts.values()))
            consistent = abs(accuracy - float(record["accuracy"])) < 1e-4
        records.append({**record, "consistent": consistent})
    return pd.DataFrame(records)


def _count(value: object) -> str:
    return "n/a" if value is None or pd.isna(value) else str(int(value))


def _threshold(value: object) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):.4g}"


def confusion_table(frame: pd.DataFrame, name: str) -> str:
    """HTML of :func:`confusion_rows`; inconsistent rows are highlighted."""
    counts = ("TN", "FP", "FN", "TP")
    rates = {"accuracy": "accuracy", "precision": "precision", "recall": "recall", "f1": "F1",
             "heatmap_call_rate": "heatmap call rate"}  # fmt: skip
    shown = pd.DataFrame(
        {
            "category": frame["category"],
            "threshold": [_threshold(v) for v in frame["threshold"]],
            **{c: [_count(v) for v in frame[c]] for c in counts},
            **{label: [percent(v) for v in frame[col]] for col, label in rates.items()},
        }
    )
    caption = (
        f"{name}: test confusion matrix at the operating threshold in metrics.csv "
        "(anomalous = score >= threshold); rates in % from metrics.csv"
    )
    classes = ["" if ok else "warn" for ok in frame["consistent"]]
    numeric = ["threshold", *counts, *rates.values()]
    return table(shown, caption, numeric=numeric, row_classes=classes)


def _summary_row(frame: pd.DataFrame, method: str, category: str | None) -> pd.Series | None:
    sel = frame["method"].astype(str) == method
    if category is not None:
        sel &= frame["category"].astype(str) == category
    found = frame[sel]
    return found.iloc[0] if len(found) else None


def _value(row: pd.Series | None, col: str) -> float:
    return float("nan") if row is None else row.get(col, float("nan"))


def comparison_rows(
    summary: pd.DataFrame,
    dataset: str,
    cascade: str,
    uses: Mapping[str, str],
    latency: pd.DataFrame | None,
) -> pd.DataFrame:
    """Gate alone, heatmap method alone and cascade per category and for the macro mean.

    The gate alone never calls the heatmap method (call rate 0) and the heatmap method alone
    always does (1); the cascade's rate is its measured one. ``recall`` is each model's test
    recall at its own val-chosen operating threshold and ``recall_lost`` the heatmap method's
    minus it (what routing costs at the operating point; negative = a gain). ``mean_ms`` (only
    with latency) is the category's time, or the macro mean over categories on the macro row.
    """
    mine = summary[summary["dataset"].astype(str) == dataset]
    per_cat, macro = rows(mine, "per_category"), rows(mine, "macro")
    categories = sorted(per_cat.loc[per_cat["method"].astype(str) == cascade, "category"])
    roles = (
        ("gate only", str(uses["gate"]), 0.0),
        ("heatmap only", str(uses["heatmap"]), 1.0),
        ("cascade", cascade, None),
    )
    timed: dict[tuple[str, str], float] = {}
    if latency is not None and not latency.empty:
        here = latency[latency["dataset"].astype(str) == dataset]
        for _, r in here.iterrows():
            timed[(str(r["method"]), str(r["category"]))] = float(r["mean_ms"])
        for _, r in method_latency(here).iterrows():
            timed[(str(r["method"]), "macro")] = float(r["mean_ms"])
    records = []
    for category in [*map(str, categories), "macro"]:
        found = {
            method: _summary_row(macro, method, None)
            if category == "macro"
            else _summary_row(per_cat, method, category)
            for _, method, _ in roles
        }
        heatmap_recall = float(_value(found[str(uses["heatmap"])], "recall"))
        for role, method, rate in roles:
            row = found[method]
            recall = float(_value(row, "recall"))
            record = {
                "category": category,
                "role": role,
                "method": method,
                "image_auroc": _value(row, "image_auroc"),
                "f1": _value(row, "f1"),
                "recall": recall,
                "recall_lost": heatmap_recall - recall,
                "heatmap_call_rate": _value(row, "heatmap_call_rate") if rate is None else rate,
            }
            if latency is not None:
                record["mean_ms"] = timed.get((method, category), float("nan"))
            records.append(record)
    return pd.DataFrame(records)


def comparison_table(frame: pd.DataFrame, name: str) -> str:
    """HTML of :func:`comparison_rows`."""
    shown = pd.DataFrame(
        {
            "category": frame["category"],
            "model": [f"{r}: {m}" for r, m in zip(frame["role"], frame["method"])],
            "I-AUROC": [percent(v) for v in frame["image_auroc"]],
            "F1 at threshold": [percent(v) for v in frame["f1"]],
            "recall at threshold": [percent(v) for v in frame["recall"]],
            "recall lost vs heatmap": [percent(v) for v in frame["recall_lost"]],
            "heatmap call rate": [percent(v) for v in frame["heatmap_call_rate"]],
        }
    )
    numeric = ["I-AUROC", "F1 at threshold", "recall at threshold", "recall lost vs heatmap",
               "heatmap call rate"]  # fmt: skip
    if "mean_ms" in frame.columns:
        shown["latency mean ms"] = [ms(v) for v in frame["mean_ms"]]
        numeric.append("latency mean ms")
    caption = (
        f"{name}: gate alone, heatmap method alone and cascade on test, %; F1 and recall at "
        "each model's own operating threshold (chosen on val); recall lost = the heatmap "
        "method's recall minus the row's; call rate 0/100 by definition for the single models"
    )
    classes = ["ref" if r == "cascade" else "" for r in frame["role"]]
    return table(shown, caption, numeric=numeric, row_classes=classes)


@dataclass
class _Context:
    """What every cascade block reads: the summary, items, sweeps, latency and image cache."""

    page: Page
    summary: pd.DataFrame
    items: dict[tuple[str, str, str], Mapping[str, Any]]
    sweeps: pd.DataFrame | None
    latency: pd.DataFrame | None
    manifests: dict[str, pd.DataFrame] = field(default_factory=dict)

    def add(self, sec: Section, stem: str, fig: Figure | None, caption: str) -> None:
        if fig is not None:
            sec.add(self.page.image(stem, to_png(fig), caption))


def _sweep_block(ctx: _Context, sec: Section, dataset: str, cascade: str) -> None:
    name = f"{dataset} / {cascade}"
    series = sweep_series(ctx.sweeps, dataset, cascade)
    if not series:
        sec.add(paragraph(f"{name}: cascade_sweep.csv has no rows for this cascade.", note=True))
        return
    chosen = ", ".join(f"{s.category} {s.label or 'none flagged'}" for s in series)
    caption = (
        f"{name}: val sweep, one point per (t_low, t_high): heatmap call rate vs F1 at that "
        f"pair's operating threshold; star = chosen pair, labelled t_low/t_high ({chosen})."
    )
    degenerate = [s.category for s in series if s.degenerate]
    if degenerate:
        warning = (
            f"WARNING: degenerate val scores in {', '.join(degenerate)} (the gate's or the "
            "heatmap method's val scores span less than 1e-3): those sweeps rank collapsed "
            "scores and their points (red x) say little."
        )
        caption += " " + warning
        sec.add(paragraph(f"{name}: {warning}", note=True))
    fig = sweep_figure(series, f"{name}: val sweep")
    ctx.add(sec, f"cascade sweep {dataset} {cascade}", fig, caption)


def _samples(
    ctx: _Context, sec: Section, dataset: str, cascade: str, heat: str, category: str, row
) -> None:
    item = ctx.items[(dataset, cascade, category)]
    scores, manifest = load_item(item, ctx.manifests)
    heatmap, note = None, f"{heat} has no score item: image only"
    heat_item = ctx.items.get((dataset, heat, category))
    if heat_item is not None:
        table_h, _ = load_item(heat_item, ctx.manifests)
        maps = np.load(heat_item["maps"], mmap_mode="r")
        if maps.ndim == 3 and maps.shape[1] > 0:
            heatmap, note = (heat, table_h, maps), f"overlay = {heat}'s anomaly map"
        else:
            note = f"{heat} has no pixel maps: image only"
    threshold = row.get("threshold", float("nan"))
    name = f"{dataset} / {cascade} / {category}"
    fig = sample_figure(
        f"{name}: routed test images",
        scores,
        sample_rows(scores),
        manifest,
        Geometry.from_config(item),
        threshold,
        heatmap,
    )
    caption = (
        f"{name}: up to {MAX_SAMPLES} test images covering both routes and both labels, those "
        f"nearest to being misjudged first; final score vs threshold {_threshold(threshold)}; "
        f"{note} (colour scale: min to max of the category's maps)."
    )
    ctx.add(sec, f"cascade samples {name}", fig, caption)


def _cascade_blocks(ctx: _Context, sec: Section, cascade: str, uses: Mapping[str, str]) -> bool:
    """All blocks of one cascade; False when the summary has no rows for it."""
    missing = {"gate", "heatmap"} - set(uses)
    if missing:
        raise ValueError(f"cascade {cascade!r}: uses lacks {sorted(missing)}")
    per_cat = rows(ctx.summary, "per_category")
    mine = per_cat[per_cat["method"].astype(str) == cascade]
    if mine.empty:
        return False
    gate, heat = str(uses["gate"]), str(uses["heatmap"])
    for dataset, group in mine.groupby("dataset", sort=True):
        dataset = str(dataset)
        name = f"{dataset} / {cascade}"
        sec.add(f"<h3>{esc(name)}</h3>")
        sec.add(paragraph(f"{name}: gate = {gate}, heatmap method = {heat}."))
        if ctx.sweeps is not None:
            _sweep_block(ctx, sec, dataset, cascade)
        tables = {}
        for category in map(str, group["category"]):
            item = ctx.items.get((dataset, cascade, category))
            if item is not None:
                tables[category] = load_item(item, ctx.manifests)[0]
        frame = confusion_rows(group, tables)
        sec.add(confusion_table(frame, name))
        if not frame["consistent"].all():
            sec.add(
                paragraph(
                    f"{name}: highlighted rows: accuracy from the score file differs from "
                    "metrics.csv (are they from the same run?).",
                    note=True,
                )
            )
        comparison = comparison_rows(ctx.summary, dataset, cascade, uses, ctx.latency)
        sec.add(comparison_table(comparison, name))
        for _, row in group.sort_values("category").iterrows():
            if str(row["category"]) in tables:
                _samples(ctx, sec, dataset, cascade, heat, str(row["category"]), row)
    return True


def add_cascade_section(
    page: Page,
    summary: pd.DataFrame,
    items: Sequence[Mapping[str, Any]],
    cascades: Mapping[str, Mapping[str, str]],
    sweeps: pd.DataFrame | None,
    latency: pd.DataFrame | None,
) -> list[str]:
    """The "Cascade" section; returns why parts were left out (for "Not shown")."""
    sec = page.section("Cascade")
    sec.add(paragraph(INTRO))
    ctx = _Context(page, summary, index_items(items), sweeps, latency)
    skipped, shown = [], 0
    for cascade, uses in sorted(cascades.items()):
        if _cascade_blocks(ctx, sec, str(cascade), uses):
            shown += 1
        else:
            skipped.append(f"Cascade {cascade}: no rows for it in metrics.csv.")
    if not shown:
        page.sections.remove(sec)
    elif not items:
        skipped.append("Cascade confusion counts and sample rows: no score files given.")
    return skipped
