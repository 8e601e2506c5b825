"""Assemble the report: read the result files, make tables and figures, write atomically.

Everything is computed in memory first; then the PNG folder and ``report.html`` are written
through :mod:`iadbench.io`'s temporary-then-rename helpers, so an exception anywhere leaves
neither a partial page nor a half-filled folder behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iadbench.data.images import Geometry
from iadbench.io import atomic_dir, save_text

from . import crossdomain as xd
from .cascade import add_cascade_section, load_sweeps
from .curves import roc_pr_figure
from .defects import add_defect_section
from .figures import to_png
from .html import Page, Section, bullet_list, paragraph, render, table
from .items import ITEM_KEYS, check_item, load_item
from .latency import add_latency_section, load_latency
from .overlays import overlay_figure
from .plots import backbone_heatmap, category_bars, fusion_ablation
from .references import comparison_blocks, load_references
from .summary import family, fpr_limits, load_summary, rows
from .tables import category_table, headline_tables, provenance_table, seed_table
from .timings import add_timings_section, load_timings
from .training import add_training_section
from .variance import add_variance_section

log = logging.getLogger(__name__)

__all__ = ["ITEM_KEYS", "build_report"]


def build_report(
    summary_csv: str | Path,
    out_html: str | Path,
    png_dir: str | Path,
    *,
    score_items: Sequence[Mapping[str, Any]] = (),
    cross_domain_csv: str | Path | None = None,
    references: str | Path | None = None,
    title: str = "iadbench results",
    overlay_per_end: int = 2,
    max_overlay_methods: int = 4,
    latency_csv: str | Path | None = None,
    sweeps_csv: str | Path | None = None,
    cascades: Mapping[str, Mapping[str, str]] | None = None,
    timings_csv: str | Path | None = None,
    trained_models: Mapping[str, str | Path] | None = None,
) -> dict[str, Any]:
    """Write ``out_html`` (self-contained) and every figure as a PNG in ``png_dir``.

    ``score_items``: one mapping per (dataset, method, category) with the keys in
    :data:`ITEM_KEYS` (``scores``/``maps``/``manifest`` are paths; ``resize``/``crop`` the
    dataset's geometry); without them there are no curves or overlays. ``cross_domain_csv`` and
    ``references`` (``config/references.yaml``) are optional; a section whose input is missing
    is listed under "Not shown" with the reason. ``latency_csv`` (``latency.csv``) adds the
    latency section after the results; ``cascades`` (cascade method -> its ``uses``, i.e.
    ``{"gate": ..., "heatmap": ...}``) with ``sweeps_csv`` (``cascade_sweep.csv``) adds the
    cascade section. Latency is opt-in, so its absence is only called out when a cascade is
    reported (whose point is speed). ``timings_csv`` (``timings.csv``) adds "Time by stage".
    Results with prompt sampling (``score_std_mean`` in the summary) add "Prompt-sampling
    variance", with a histogram per score item that holds the per-image spread.
    ``trained_models`` (label -> a model folder with a ``loss_log.csv``: a method trained on a
    train set, or "method (dataset)" for a per-dataset multi-class model) adds "Trained
    methods": the cross-dataset table and the loss curves. Returns the figure names and section
    titles.
    """
    start = time.perf_counter()
    summary = load_summary(summary_csv)
    for item in score_items:
        check_item(item)
    cascades = dict(cascades or {})
    page = Page(title)
    skipped: list[str] = []
    page.intro.append(_intro(summary, summary_csv))
    _results(page, summary)
    add_training_section(page, summary, trained_models)
    latency = load_latency(latency_csv) if latency_csv is not None else None
    if latency is not None:
        add_latency_section(page, summary, latency)
    elif cascades:
        skipped.append("Latency: no latency.csv given (set `latency:` in the config to time).")
    _per_category(page, summary)
    add_defect_section(page, summary)  # only results with per-defect AUROCs
    if references is not None:
        page.section("Published numbers").blocks.extend(
            comparison_blocks(summary, load_references(references))
        )
    else:
        skipped.append("Published numbers: no references file given.")
    if score_items:
        _curves_and_overlays(page, summary, score_items, overlay_per_end, max_overlay_methods)
    else:
        skipped.append("ROC/PR curves and overlays: no score files given.")
    if cascades:
        if sweeps_csv is None:
            skipped.append("Cascade sweep: no cascade_sweep.csv given.")
        sweeps = load_sweeps(sweeps_csv) if sweeps_csv is not None else None
        skipped += add_cascade_section(page, summary, score_items, cascades, sweeps, latency)
    elif sweeps_csv is not None:
        skipped.append("Cascade: cascade_sweep.csv given but no cascade methods named.")
    add_variance_section(page, summary, score_items)  # only methods that sample their prompts
    skipped += _settings(page, summary)
    if cross_domain_csv is not None:
        _cross_domain(page, xd.load_cross_domain(cross_domain_csv))
    else:
        skipped.append("Cross-domain: no cross_domain.csv given.")
    if timings_csv is not None:  # like latency, only shown when given (the pipeline does)
        add_timings_section(page, load_timings(timings_csv))
    provenance = provenance_table(summary)
    if provenance:
        page.section("Provenance").add(provenance)
    else:
        skipped.append("Provenance: the summary records no configuration columns.")
    if skipped:
        page.section("Not shown").add(bullet_list(skipped))
    with atomic_dir(png_dir) as tmp:
        for img in page.images:
            (tmp / img.name).write_bytes(img.png)
        save_text(out_html, render(page))
    log.info(
        "report: %d figures, %d sections in %.1f s -> %s",
        len(page.images),
        len(page.sections),
        time.perf_counter() - start,
        out_html,
    )
    return {"figures": [i.name for i in page.images], "sections": [s.title for s in page.sections]}


def _intro(summary: pd.DataFrame, path: str | Path) -> str:
    limits = fpr_limits(summary)
    limit = ", ".join(f"{v:g}" for v in limits) or "not recorded"
    return paragraph(
        f"Source: {path}. All metrics in %. Dataset-level numbers are macro means over "
        "categories (the papers' convention) unless labelled micro (all images pooled). "
        f"AUPRO integrates the per-region overlap up to FPR {limit} and is divided by that "
        "limit (MVTec AD's official definition)."
    )


def _add(page: Page, sec: Section, stem: str, fig, caption: str) -> None:
    if fig is not None:
        sec.add(page.image(stem, to_png(fig), caption))


def _results(page: Page, summary: pd.DataFrame) -> None:
    sec = page.section("Results")
    sec.blocks.extend(headline_tables(summary))
    seeds = seed_table(summary)
    if seeds:
        sec.add(seeds)


def _per_category(page: Page, summary: pd.DataFrame) -> None:
    per_cat = rows(summary, "per_category")
    sec = page.section("Per category")
    sec.add(category_table(summary))
    limits = fpr_limits(summary)
    for dataset, group in per_cat.groupby("dataset", sort=True):
        fig = category_bars(group, str(dataset), limits)
        _add(page, sec, f"bars {dataset}", fig, f"{dataset}: per-category metrics by method")


def _settings(page: Page, summary: pd.DataFrame) -> list[str]:
    """Backbone and fusion comparisons; returns why each was left out, if it was."""
    per_cat, macro = rows(summary, "per_category"), rows(summary, "macro")
    if "component" in macro.columns:  # one modality of a fused method is no fusion mode
        macro = macro[macro["component"].isna()]
    backbones = Section("Backbone comparison")
    fusion = Section("Layer-fusion ablation")
    groups = family(per_cat)
    if groups is not None:
        for (dataset, name), group in per_cat.groupby([per_cat["dataset"], groups], sort=True):
            fig = backbone_heatmap(group, f"{dataset}: {name}, image AUROC by backbone")
            _add(page, backbones, f"backbones {dataset} {name}", fig, f"{dataset}: {name}")
    for dataset, group in macro.groupby("dataset", sort=True):
        fig = fusion_ablation(group, str(dataset))
        _add(page, fusion, f"fusion {dataset}", fig, f"{dataset}: AUROC vs feature dimension")
    skipped = []
    for sec, why in (
        (backbones, "one backbone per method family (base/kind), or no kind/base column."),
        (fusion, "a single fusion mode, or no fusion column."),
    ):
        if sec.blocks:
            page.sections.append(sec)
        else:
            skipped.append(f"{sec.title}: {why}")
    return skipped


def _overlay_methods(summary: pd.DataFrame, dataset: str, methods: set[str], cap: int) -> list:
    """All methods, or the ``cap`` best by macro image AUROC when there are more."""
    if len(methods) <= cap:
        return sorted(methods)
    macro = rows(summary, "macro")
    macro = macro[(macro["dataset"] == dataset) & macro["method"].isin(methods)]
    ranked = macro.sort_values("image_auroc", ascending=False)["method"].tolist()
    return (ranked + sorted(methods - set(ranked)))[:cap]


def _curves_and_overlays(
    page: Page,
    summary: pd.DataFrame,
    items: Sequence[Mapping[str, Any]],
    per_end: int,
    cap: int,
) -> None:
    manifests: dict[str, pd.DataFrame] = {}
    curves_sec = page.section("ROC and PR curves")
    overlay_sec = page.section("Anomaly-map overlays")
    overlay_sec.add(
        paragraph(
            f"Per category and method: the {per_end} highest- and {per_end} lowest-scoring test "
            "images. One colour scale per figure: min to max over all of that category's maps."
        )
    )
    by_dataset: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for item in items:
        cats = by_dataset.setdefault(str(item["dataset"]), {})
        cats.setdefault(str(item["category"]), []).append(item)
    for dataset, cats in sorted(by_dataset.items()):
        methods = {str(i["method"]) for group in cats.values() for i in group}
        shown = _overlay_methods(summary, dataset, methods, cap)
        if len(shown) < len(methods):
            overlay_sec.add(
                paragraph(f"{dataset}: overlays for the {cap} best methods by macro I-AUROC.")
            )
        for category, group in sorted(cats.items()):
            curves = {}
            for item in sorted(group, key=lambda i: str(i["method"])):
                table, manifest = load_item(item, manifests)
                method = str(item["method"])
                curves[method] = (table["label"].to_numpy(), table["score"].to_numpy(float))
                maps = np.load(item["maps"], mmap_mode="r")
                if method not in shown or maps.ndim != 3 or maps.shape[1] == 0:
                    continue  # not among the best shown, or a method without pixel maps
                name = f"{dataset} / {method} / {category}"
                fig = overlay_figure(
                    name,
                    table,
                    maps,
                    manifest,
                    Geometry.from_config(item),
                    per_end,
                    mask_threshold=int(item.get("mask_threshold", 0)),
                )
                _add(page, overlay_sec, f"overlay {name}", fig, name)
            fig = roc_pr_figure(f"{dataset} / {category}: image-level curves", curves)
            _add(page, curves_sec, f"curves {dataset} {category}", fig, f"{dataset} / {category}")


def _cross_domain(page: Page, frame: pd.DataFrame) -> None:
    sec = page.section("Cross-domain")
    sec.add(
        paragraph(
            "A model fitted on the training category's normal images, tested on the test "
            "category. Drop = in-domain image AUROC of the test category minus the cross AUROC "
            "(percentage points). Distances are between the two categories' training features."
        )
    )
    for (dataset, method), group in frame.groupby(["dataset", "method"], sort=True):
        fig = xd.auroc_heatmap(group, f"{dataset} / {method}: image AUROC")
        _add(page, sec, f"cross {dataset} {method}", fig, f"{dataset} / {method}")
    drops = xd.with_drops(frame)
    _add(page, sec, "cross drop vs distance", xd.drop_scatter(drops), "AUROC drop vs distance")
    if not drops.empty:
        shown = xd.drop_rows(drops)
        numeric = [c for c in shown.columns if c not in xd.REQUIRED[:4]]
        sec.add(table(shown, "Cross pairs, largest drop first", numeric=numeric))
