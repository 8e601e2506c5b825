"""One function per workflow step: read the step's input files, call the library, write outputs.

The Snakemake scripts and the ``iadbench`` CLI both call these, so every rule can also be run
(and debugged) by hand without Snakemake. Steps that need PyTorch import it inside the function:
each Snakemake job is a fresh process, and the data and metrics jobs should not pay seconds of
deep-learning imports they never use.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from iadbench.data.images import Geometry, load_mask
from iadbench.data.manifest import build_manifest
from iadbench.errors import CacheError
from iadbench.io import save_json, save_npy, save_parquet, save_text
from iadbench.metrics import evaluate_category, micro_metrics, summarise, to_markdown

log = logging.getLogger(__name__)


def geometry_of(dataset_cfg: dict) -> Geometry:
    """The dataset's resize/crop, shared by feature extraction and evaluation."""
    return Geometry(int(dataset_cfg.get("resize", 256)), int(dataset_cfg.get("crop", 224)))


def make_demo(root: str | Path, demo_cfg: dict, categories: list[str]) -> dict:
    """Generate the embedded demo dataset (see :mod:`iadbench.data.demo`)."""
    from iadbench.data.demo import generate_demo

    return generate_demo(root, categories=tuple(categories), **demo_cfg)


def make_manifest(dataset: str, dataset_cfg: dict, out: str | Path) -> pd.DataFrame:
    """Build, validate and write ``results/{dataset}/manifest.parquet``.

    Masks that match no image are logged by the reader and kept in the Parquet file's metadata
    (``frame.attrs["orphan_masks"]``), so they stay listed beside the data they were found with.
    """
    frame = build_manifest(dataset, dataset_cfg)
    save_parquet(out, frame)
    return frame


def make_features(
    manifest: str | Path,
    category: str,
    split: str,
    backbone_cfg: dict,
    dataset_cfg: dict,
    npy: str | Path,
    index: str | Path,
    device: str = "auto",
) -> dict:
    """Extract one (category, split) of a dataset with one backbone config into the store."""
    from iadbench.features.extract import FeatureConfig, extract_features

    cfg = FeatureConfig.from_config(backbone_cfg, dataset_cfg)
    frame = pd.read_parquet(manifest)
    return extract_features(
        frame,
        category,
        split,
        cfg,
        npy,
        index,
        device=device,
        batch_size=int(backbone_cfg.get("batch_size", 16)),
    )


def _features(npy: str | Path, index: str | Path, backbone_cfg: dict, dataset_cfg: dict):
    from iadbench.features.extract import FeatureConfig
    from iadbench.features.store import load_features

    expected = FeatureConfig.from_config(backbone_cfg, dataset_cfg).hash()
    return load_features(npy, index, expect_hash=expected)


def fit_method(
    method_cfg: dict,
    backbone_cfg: dict,
    dataset_cfg: dict,
    train_npy: str | Path | None,
    train_index: str | Path | None,
    state_dir: str | Path,
    device: str = "auto",
) -> dict:
    """Fit one method on one category's training features; state goes to ``state_dir``."""
    from iadbench.methods import build_method

    method = build_method(method_cfg, device=device)
    train = None
    if method.needs_train:
        train = _features(train_npy, train_index, backbone_cfg, dataset_cfg)
        if (train.index["label"] != 0).any():
            raise CacheError(f"{train_index}: training features include anomalous samples")
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    return method.fit(train, Path(state_dir))


def score_method(
    method_cfg: dict,
    backbone_cfg: dict,
    dataset_cfg: dict,
    state_dir: str | Path,
    test_npy: str | Path,
    test_index: str | Path,
    scores_out: str | Path,
    maps_out: str | Path,
    device: str = "auto",
) -> pd.DataFrame:
    """Score one category's test split: ``scores.parquet`` (one row per image) + ``maps.npy``."""
    from iadbench.methods import build_method

    method = build_method(method_cfg, device=device)
    test = _features(test_npy, test_index, backbone_cfg, dataset_cfg)
    crop = geometry_of(dataset_cfg).crop
    scores, maps = method.score(Path(state_dir), test, (crop, crop))
    if not np.isfinite(scores).all() or not np.isfinite(maps).all():
        raise CacheError(f"{state_dir}: method produced NaN/Inf scores")
    table = test.index[["sample_id", "category", "label", "defect_type"]].copy()
    table["score"] = scores.astype(np.float64)
    save_npy(maps_out, maps.astype(np.float32))
    save_parquet(scores_out, table)
    return table


def _ground_truth(
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


def provenance(wildcards, method_cfg: dict, state_dir: str | Path) -> dict:
    """Which data, method config, backbone, weights and fitted state produced a result."""
    state = json.loads((Path(state_dir) / "state.json").read_text())
    features = state.get("features") or {}
    record = {
        "dataset": wildcards.dataset,
        "method": wildcards.method,
        "category": wildcards.category,
        "kind": method_cfg["kind"],
        "method_config": method_cfg,
        "backbone": method_cfg.get("backbone"),
        "model": features.get("model"),
        "weights": features.get("weights"),
        "feature_config_hash": features.get("config_hash"),
        "feature_dim": state.get("feature_dim"),
        "fusion": (state.get("fusion") or {}).get("mode"),
        "bank": (state.get("bank") or {}).get("kind"),
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
    geometry = geometry_of(dataset_cfg)
    masks, known = _ground_truth(
        table, pd.read_parquet(manifest), geometry, int(dataset_cfg.get("mask_threshold", 0))
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


def _describe(record: dict, grid: dict) -> dict:
    """Columns that say which design choice a result row stands for (grid axes included)."""
    cfg = record.get("method_config") or {}
    cell = grid.get(record["method"], {"base": record["method"], "axes": {}})
    return {
        "kind": record.get("kind"),
        "base": cell["base"],
        "grid": ";".join(f"{k}={v}" for k, v in cell["axes"].items()),
        "backbone": record.get("backbone"),
        "backbone_model": record.get("model"),
        "weights": record.get("weights"),
        "fusion": record.get("fusion"),
        "feature_dim": record.get("feature_dim"),
        "bank": record.get("bank"),
        "seed": cfg.get("seed"),
    }


def aggregate(
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
    """Per-category rows + macro mean + micro (pooled) rows -> CSV and Markdown.

    ``grid`` maps expanded method names to their base entry and grid axes (see
    :func:`iadbench.config.expand_methods`); those become the ``base``/``grid`` columns.
    """
    rows = []
    for path in metric_files:
        record = json.loads(Path(path).read_text())
        rows.append(
            {
                "dataset": record["dataset"],
                "method": record["method"],
                "category": record["category"],
                **_describe(record, grid or {}),
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
        geometry = geometry_of(cfg)
        manifest = pd.read_parquet(manifests[dataset])
        labels, scores, masks, maps = [], [], [], []
        for i in members:
            table = pd.read_parquet(score_files[i])
            truth, known = _ground_truth(
                table, manifest, geometry, int(cfg.get("mask_threshold", 0))
            )
            labels.append(table["label"].to_numpy())
            scores.append(table["score"].to_numpy())
            masks.append(truth[known])
            maps.append(np.load(map_files[i])[known])
        micro = micro_metrics(labels, scores, masks, maps, fpr_limit=fpr_limit)
        described = {k: rows[members[0]][k] for k in _describe({"method": method}, {})}
        micro_rows.append(
            {"dataset": dataset, "method": method, "category": "micro", **described, **micro}
        )
    summary = summarise(per_category, pd.DataFrame(micro_rows) if micro_rows else None)
    save_text(csv_out, summary.to_csv(index=False, float_format="%.6f"))
    save_text(md_out, to_markdown(summary))
    return summary


def _patch_sample(npy: str | Path, index: str | Path, backbone_cfg: dict, dataset_cfg: dict):
    features = _features(npy, index, backbone_cfg, dataset_cfg).features
    return np.asarray(features, dtype=np.float32).reshape(-1, features.shape[-1])


def feature_distance(
    a: tuple[str | Path, str | Path],
    b: tuple[str | Path, str | Path],
    backbone_cfg: dict,
    dataset_cfg: dict,
    out: str | Path,
    seed: int = 0,
    max_samples: int = 2000,
) -> dict:
    """MMD, sliced Wasserstein and cosine distance between two training-patch distributions."""
    from iadbench.metrics.domain import domain_distances

    x = _patch_sample(*a, backbone_cfg, dataset_cfg)
    y = _patch_sample(*b, backbone_cfg, dataset_cfg)
    result = domain_distances(x, y, seed=seed, max_samples=max_samples)
    save_json(out, result)
    return result


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
