"""Evaluation steps: per-category metrics with provenance, the summary tables, cross-category.

Provenance columns come from each method's own ``describe(state)``
(:meth:`iadbench.methods.params.Params.describe`); nothing here knows one method's internals.

A fused method's score table may keep each modality's own score as ``component_<name>``; those
are evaluated like the fused score and reported as method ``<method>[<name>]``, so one table
compares the fusion with each single modality on the same samples.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

from iadbench.data.images import Geometry, load_mask
from iadbench.io import save_json, save_text
from iadbench.methods.kinds import params_of
from iadbench.metrics import evaluate_category, micro_metrics, summarise, to_markdown
from iadbench.metrics.calibration import ece
from iadbench.metrics.operating import at_threshold, threshold_max_f1

log = logging.getLogger(__name__)
# Provenance a kind without fitted state writes into its score table (one value per table): the
# CLIP methods' class name, encoder model and weights; Crane's resolved taps, first refined block
# and DINOv2 weights, and RCS's A_c blocks.
TABLE_PROVENANCE = (
    "class_name", "backbone_model", "weights", "taps", "eattn_from", "dino_weights", "rcs_layers"
)  # fmt: skip
COMPONENT_PREFIX = "component_"


def ground_truth(
    table: pd.DataFrame,
    manifest: pd.DataFrame,
    geom: Geometry,
    threshold: int = 0,
    cut: list[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Masks at the evaluation resolution in the score table's order, and which images have one.

    Normal images count as all-zero ground truth; an anomalous image kept without a mask
    (``note == "missing_mask"``) is excluded from pixel metrics instead of counted as normal.
    ``cut``, when given, receives per mask the defect pixels the centre crop removed.
    """
    rows = manifest.set_index("sample_id").loc[table["sample_id"]]
    notes = rows["note"] if "note" in rows else pd.Series("", index=rows.index)
    masks = np.zeros((len(rows), geom.crop, geom.crop), dtype=bool)
    for i, path in enumerate(rows["mask_path"].tolist()):
        if isinstance(path, str):
            masks[i], lost = geom.mask_and_loss(load_mask(path, threshold))
            if cut is not None:
                cut.append(lost)
    return masks, (notes.fillna("") != "missing_mask").to_numpy()


def crop_losses(cut: list[int], masks: np.ndarray, where: str) -> dict[str, float | int]:
    """``masks_cut`` (masks that lost defect pixels to the crop) and the share of pixels lost."""
    lost = int(sum(cut))
    total = lost + int(masks.sum())
    n_cut = sum(1 for c in cut if c > 0)
    if n_cut:
        log.warning(
            "%s: the centre crop removes defect pixels from %d of %d masks (%d of %d pixels, "
            "%.1f %%); those defects are partly invisible to every method and to the metrics",
            where,
            n_cut,
            len(cut),
            lost,
            total,
            100.0 * lost / max(total, 1),
        )
    return {"masks_cut": n_cut, "mask_pixels_cut": lost / total if total else 0.0}


def read_state(state_dir: str | Path | None) -> dict:
    """A model's ``state.json`` ({} for zero-shot methods, which have no model)."""
    if state_dir is None:
        return {}
    return json.loads((Path(state_dir) / "state.json").read_text())


def provenance(wildcards, method_cfg: dict, state: dict) -> dict:
    """Which data, method config and model produced a result, plus the method's own columns."""
    params = params_of(method_cfg)
    record = {
        "dataset": wildcards.dataset,
        "method": wildcards.method,
        "category": wildcards.category,
        "split": wildcards.split,
        "kind": method_cfg["kind"],
        "method_config": method_cfg,
        "backbone": method_cfg.get("backbone"),
        "train_on": method_cfg.get("train_on"),
        "probabilities": params.needs().probabilities,
        "describe": params.describe(state),
    }
    if hasattr(wildcards, "train_category"):
        record["train_category"] = wildcards.train_category
    return record


def operating_point(
    table: pd.DataFrame, val: pd.DataFrame | None, state: dict, column: str = "score"
) -> dict[str, float | str | None]:
    """Accuracy/precision/recall/F1 at a threshold chosen without looking at ``table``.

    The method's own fitted threshold (``state["threshold"]``, e.g. the cascade's) wins;
    otherwise the max-F1 threshold of the method's ``val`` scores; with neither, n/a.
    ``column`` is the score judged: a component score takes its threshold from ``val`` only
    (a fitted threshold belongs to the method's own score).
    """
    labels, scores = table["label"].to_numpy(), table[column].to_numpy()
    if column == "score" and state.get("threshold") is not None:
        threshold, source = float(state["threshold"]), "fit"
    elif val is not None and column in val.columns:
        threshold, source = (
            threshold_max_f1(val["label"].to_numpy(), val[column].to_numpy()),
            "val",
        )
    else:
        threshold, source = float("nan"), None
    return {**at_threshold(labels, scores, threshold), "threshold_from": source}


def defect_types_of(table: pd.DataFrame) -> np.ndarray | None:
    """The score table's defect type per sample, which per-defect AUROCs group by."""
    return table["defect_type"].to_numpy() if "defect_type" in table.columns else None


def component_metrics(
    table: pd.DataFrame, val: pd.DataFrame | None, fpr_limit: float
) -> dict[str, dict]:
    """Image metrics and the val operating point of each ``component_<name>`` score, by name.

    Components have no maps, so their pixel metrics are n/a as for any kind without maps.
    """
    out = {}
    for column in sorted(c for c in table.columns if c.startswith(COMPONENT_PREFIX)):
        metrics = evaluate_category(
            table["label"].to_numpy(),
            table[column].to_numpy(),
            None,
            None,
            fpr_limit=fpr_limit,
            defect_types=defect_types_of(table),
        )
        metrics.update(operating_point(table, val, {}, column))
        out[column.removeprefix(COMPONENT_PREFIX)] = metrics
    return out


def compute_metrics(
    scores: str | Path,
    maps: str | Path,
    manifest: str | Path,
    geometry: dict,
    provenance: dict,
    out: str | Path,
    fpr_limit: float = 0.3,
    val_scores: str | Path | None = None,
    state: dict | None = None,
) -> dict:
    """Per-category metrics JSON with the provenance of the numbers.

    Pixel metrics need maps (a kind without them writes an empty array: pixel metrics n/a).
    Every row gets the operating point of :func:`operating_point`; score tables with a
    ``route`` column add ``heatmap_call_rate``; kinds whose scores are probabilities add their
    ``ece`` (15 bins), ``ece_uncalibrated`` when the table keeps the raw logit ``margin``, and
    ``ece_<x>`` for each probability column ``p_<x>`` (e.g. a cascade's two routes); score
    tables with per-image ``score_std``/``map_std_mean`` (prompt sampling) add
    ``score_std_mean``, ``score_std_max`` and ``map_std_mean``. A score table with two or more
    defect types adds ``auroc_<type>`` (normal vs that type only); one with ``component_<name>``
    columns adds their metrics under ``components`` (see :func:`component_metrics`). A
    manifest that records a ``label_mask`` (photos showing their class label) puts it, or
    ``off``, in the provenance.
    """
    table = pd.read_parquet(scores)
    maps_arr = np.load(maps, mmap_mode="r")
    has_maps = maps_arr.ndim == 3 and maps_arr.shape[1] > 0
    cut: list[int] = []
    manifest_frame = pd.read_parquet(manifest)
    masks, known = ground_truth(
        table,
        manifest_frame,
        Geometry.from_config(geometry),
        int(geometry.get("mask_threshold", 0)),
        cut,
    )
    result = evaluate_category(
        table["label"].to_numpy(),
        table["score"].to_numpy(),
        masks if has_maps else None,
        np.asarray(maps_arr) if has_maps else None,
        fpr_limit=fpr_limit,
        pixel_subset=known,
        defect_types=defect_types_of(table),
    )
    result.update(crop_losses(cut, masks, str(scores)))
    state = state or {}
    val = pd.read_parquet(val_scores) if val_scores is not None else None
    result.update(operating_point(table, val, state))
    if "route" in table.columns:
        result["heatmap_call_rate"] = float((table["route"] == "heatmap").mean())
    labels = table["label"].to_numpy()
    if provenance.get("probabilities"):
        result["ece"] = ece(table["score"].to_numpy(), labels)
    if "margin" in table.columns:
        result["ece_uncalibrated"] = ece(expit(table["margin"].to_numpy()), labels)
    for column in (c for c in table.columns if c.startswith("p_")):
        result[f"ece_{column[2:]}"] = ece(table[column].to_numpy(), labels)
    if "score_std" in table.columns:  # spread over prompt samples (see report.variance)
        result["score_std_mean"] = float(table["score_std"].mean())
        result["score_std_max"] = float(table["score_std"].max())
        result["map_std_mean"] = float(table["map_std_mean"].mean())
    described = {c: str(table[c].iloc[0]) for c in TABLE_PROVENANCE if c in table.columns}
    if "label_mask" in manifest_frame.attrs:  # photos with a printed class label (weld layout)
        box = manifest_frame.attrs["label_mask"]
        described["label_mask"] = ",".join(str(v) for v in box) if box else "off"
    if described:
        provenance = {**provenance, "describe": {**provenance.get("describe", {}), **described}}
    result = {"metrics": result, **provenance}
    if components := component_metrics(table, val, fpr_limit):
        result["components"] = components
    save_json(out, result)
    return result


def describe_row(record: dict, grid: dict) -> dict:
    """Columns that say which design choice a result row stands for (grid axes included)."""
    cfg = record.get("method_config") or {}
    cell = grid.get(record["method"], {"base": record["method"], "axes": {}})
    return {
        "kind": record.get("kind"),
        "base": cell["base"],
        "grid": ";".join(f"{k}={v}" for k, v in cell["axes"].items()),
        "backbone": record.get("backbone"),
        "train_on": record.get("train_on"),
        "seed": cfg.get("seed"),
        **(record.get("describe") or {}),
    }


def _common_columns(rows: list[dict]) -> dict:
    """The describe columns shared by every category (None where categories differ)."""
    return {k: v if all(r.get(k) == v for r in rows) else None for k, v in rows[0].items()}


def result_rows(record: dict, columns: dict) -> Iterator[tuple[str, str, dict, dict]]:
    """(method, score column, describe columns, metrics) of a metrics record and its components.

    A component row is named ``<method>[<name>]`` with ``base`` suffixed alike, so seed,
    backbone and cross-dataset groupings never mix a fusion with one of its modalities.
    """
    yield record["method"], "score", columns, record["metrics"]
    for name, metrics in sorted((record.get("components") or {}).items()):
        own = {**columns, "base": f"{columns['base']}[{name}]", "component": name}
        yield f"{record['method']}[{name}]", f"{COMPONENT_PREFIX}{name}", own, metrics


def _result_rows(metric_files: list[str | Path], grid: dict) -> tuple[list, list, dict]:
    """Per-category rows of every metrics file, each row's (file index, score column), and each
    (dataset, method row)'s describe columns per category."""
    rows, sources, described = [], [], {}
    for i, path in enumerate(metric_files):
        record = json.loads(Path(path).read_text())
        for method, column, columns, metrics in result_rows(record, describe_row(record, grid)):
            described.setdefault((record["dataset"], method), []).append(columns)
            rows.append(
                {
                    "dataset": record["dataset"],
                    "method": method,
                    "category": record["category"],
                    **columns,
                    **metrics,
                }
            )
            sources.append((i, column))
    return rows, sources, described


def compute_micro(
    metric_files: list[str | Path],
    score_files: list[str | Path],
    map_files: list[str | Path],
    manifest: str | Path,
    geometry: dict,
    out: str | Path,
    fpr_limit: float = 0.3,
    grid: dict | None = None,
) -> list[dict]:
    """The micro rows (all categories' images and pixels pooled) of one method on one dataset.

    The inputs are the method's per-category test metrics, scores and maps, in the same order;
    a fused method also gets one row per component. One job per (dataset, method): pooling
    sorts every pixel of the dataset, so changing one method re-pools only that method.
    """
    rows, sources, described = _result_rows(metric_files, grid or {})
    geom = Geometry.from_config(geometry)
    table_of = {}
    manifest_table = pd.read_parquet(manifest)
    micro_rows = []
    for method in dict.fromkeys(row["method"] for row in rows):
        members = [i for i, row in enumerate(rows) if row["method"] == method]
        labels, scores, masks, maps = [], [], [], []
        for file, column in (sources[i] for i in members):
            table = table_of.get(file)
            if table is None:
                table = table_of[file] = pd.read_parquet(score_files[file])
            labels.append(table["label"].to_numpy())
            scores.append(table[column].to_numpy())
            if column != "score":
                continue  # a component score has no maps
            truth, known = ground_truth(
                table, manifest_table, geom, int(geometry.get("mask_threshold", 0))
            )
            masks.append(truth[known])
            maps.append(np.load(map_files[file])[known])
        if len(maps) < len(labels) or any(m.ndim != 3 or m.shape[1] == 0 for m in maps):
            masks, maps = None, None  # a method without pixel maps: pixel metrics are n/a
        micro = micro_metrics(labels, scores, masks, maps, fpr_limit=fpr_limit)
        dataset = rows[members[0]]["dataset"]
        micro_rows.append(
            {
                "dataset": dataset,
                "method": method,
                "category": "micro",
                **_common_columns(described[(dataset, method)]),
                **micro,
            }
        )
    save_json(out, micro_rows)
    return micro_rows


def summarise_results(
    metric_files: list[str | Path],
    micro_files: list[str | Path],
    csv_out: str | Path,
    md_out: str | Path,
    grid: dict | None = None,
) -> pd.DataFrame:
    """Per-category rows + macro mean + micro (pooled) rows -> full CSV and headline Markdown.

    ``micro_files`` are :func:`compute_micro`'s outputs. ``grid`` maps expanded method names to
    their base entry and grid axes (see :func:`iadbench.config.expand_methods`); those become the
    ``base``/``grid`` columns. Component scores of fused methods become rows of their own
    (:func:`result_rows`).
    """
    rows, _, _ = _result_rows(metric_files, grid or {})
    micro_rows = [row for path in micro_files for row in json.loads(Path(path).read_text())]
    summary = summarise(pd.DataFrame(rows), pd.DataFrame(micro_rows) if micro_rows else None)
    save_text(csv_out, summary.to_csv(index=False, float_format="%.6f"))
    save_text(md_out, to_markdown(summary))
    return summary


def cross_summary(
    cells: list[dict], metric_files: list[str | Path], distance_files: list[str | Path], out
) -> pd.DataFrame:
    """One row per (method, train category, test category) with AUROCs and domain distances."""
    rows = []
    for cell, metrics_path, distance_path in zip(cells, metric_files, distance_files):
        metrics = json.loads(Path(metrics_path).read_text())["metrics"]
        distances = json.loads(Path(distance_path).read_text())
        rows.append(
            {
                "dataset": cell["dataset"],
                "method": cell["method"],
                "train_category": cell["train"],
                "test_category": cell["test"],
                "in_domain": cell["train"] == cell["test"],
                "image_auroc": metrics["image_auroc"],
                "pixel_auroc": metrics["pixel_auroc"],
                "aupro": metrics["aupro"],
                **distances,
            }
        )
    table = pd.DataFrame(rows)
    save_text(out, table.to_csv(index=False, float_format="%.6f"))
    return table


def collect_sweeps(cells: list, state_dirs: list[str | Path], out: str | Path) -> pd.DataFrame:
    """Every cascade's val sweep (``sweep.csv`` in its fitted state), one table."""
    frames = [
        pd.read_csv(Path(state) / "sweep.csv").assign(dataset=d, method=m, category=c)
        for (m, d, c), state in zip(cells, state_dirs)
    ]
    table = pd.concat(frames, ignore_index=True)
    first = ["dataset", "method", "category"]
    table = table[first + [c for c in table.columns if c not in first]]
    save_text(out, table.to_csv(index=False, float_format="%.6f"))
    return table
