"""Evaluation steps: per-category metrics with provenance, the summary tables, cross-category.

Provenance columns come from each method's own ``describe(state)``
(:meth:`iadbench.methods.kinds.Params.describe`); nothing here knows one method's internals.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from iadbench.data.images import Geometry, load_mask
from iadbench.io import save_json, save_text
from iadbench.methods.kinds import params_of
from iadbench.metrics import evaluate_category, micro_metrics, summarise, to_markdown


def ground_truth(
    table: pd.DataFrame, manifest: pd.DataFrame, geometry: Geometry, threshold: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Masks at the evaluation resolution in the score table's order, and which images have one.

    Normal images count as all-zero ground truth; an anomalous image kept without a mask
    (``note == "missing_mask"``) is excluded from pixel metrics instead of counted as normal.
    """
    rows = manifest.set_index("sample_id").loc[table["sample_id"]]
    notes = rows["note"] if "note" in rows else pd.Series("", index=rows.index)
    masks = np.zeros((len(rows), geometry.crop, geometry.crop), dtype=bool)
    for i, path in enumerate(rows["mask_path"].tolist()):
        if isinstance(path, str):
            masks[i] = geometry.mask(load_mask(path, threshold))
    return masks, (notes.fillna("") != "missing_mask").to_numpy()


def provenance(wildcards, method_cfg: dict, state_dir: str | Path | None) -> dict:
    """Which data, method config and model produced a result, plus the method's own columns."""
    state = {}
    if state_dir is not None:
        state = json.loads((Path(state_dir) / "state.json").read_text())
    record = {
        "dataset": wildcards.dataset,
        "method": wildcards.method,
        "category": wildcards.category,
        "split": wildcards.split,
        "kind": method_cfg["kind"],
        "method_config": method_cfg,
        "backbone": method_cfg.get("backbone"),
        "train_on": method_cfg.get("train_on"),
        "describe": params_of(method_cfg).describe(state),
    }
    if hasattr(wildcards, "train_category"):
        record["train_category"] = wildcards.train_category
    return record


def compute_metrics(
    scores: str | Path,
    maps: str | Path,
    manifest: str | Path,
    dataset_cfg: dict,
    provenance: dict,
    out: str | Path,
    fpr_limit: float = 0.3,
) -> dict:
    """Per-category metrics JSON with the provenance of the numbers."""
    table = pd.read_parquet(scores)
    maps_arr = np.load(maps, mmap_mode="r")
    masks, known = ground_truth(
        table,
        pd.read_parquet(manifest),
        Geometry.from_config(dataset_cfg),
        int(dataset_cfg.get("mask_threshold", 0)),
    )
    result = evaluate_category(
        table["label"].to_numpy(),
        table["score"].to_numpy(),
        masks,
        np.asarray(maps_arr),
        fpr_limit=fpr_limit,
        pixel_subset=known,
    )
    result = {"metrics": result, **provenance}
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


def summarise_results(
    metric_files: list[str | Path],
    score_files: list[str | Path],
    map_files: list[str | Path],
    manifests: dict[str, str | Path],
    dataset_cfgs: dict[str, dict],
    csv_out: str | Path,
    md_out: str | Path,
    fpr_limit: float = 0.3,
    grid: dict | None = None,
) -> pd.DataFrame:
    """Per-category rows + macro mean + micro (pooled) rows -> full CSV and headline Markdown.

    ``grid`` maps expanded method names to their base entry and grid axes (see
    :func:`iadbench.config.expand_methods`); those become the ``base``/``grid`` columns.
    """
    rows, described = [], {}
    for path in metric_files:
        record = json.loads(Path(path).read_text())
        columns = describe_row(record, grid or {})
        described.setdefault((record["dataset"], record["method"]), columns)
        rows.append(
            {
                "dataset": record["dataset"],
                "method": record["method"],
                "category": record["category"],
                **columns,
                **record["metrics"],
            }
        )
    per_category = pd.DataFrame(rows)
    micro_rows = []
    groups: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault((row["dataset"], row["method"]), []).append(i)
    for (dataset, method), members in sorted(groups.items()):
        cfg = dataset_cfgs[dataset]
        geometry = Geometry.from_config(cfg)
        manifest = pd.read_parquet(manifests[dataset])
        labels, scores, masks, maps = [], [], [], []
        for i in members:
            table = pd.read_parquet(score_files[i])
            truth, known = ground_truth(
                table, manifest, geometry, int(cfg.get("mask_threshold", 0))
            )
            labels.append(table["label"].to_numpy())
            scores.append(table["score"].to_numpy())
            masks.append(truth[known])
            maps.append(np.load(map_files[i])[known])
        micro = micro_metrics(labels, scores, masks, maps, fpr_limit=fpr_limit)
        micro_rows.append(
            {
                "dataset": dataset,
                "method": method,
                "category": "micro",
                **described[(dataset, method)],
                **micro,
            }
        )
    summary = summarise(per_category, pd.DataFrame(micro_rows) if micro_rows else None)
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
