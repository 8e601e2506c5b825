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
    """Build, validate and write ``results/{dataset}/manifest.parquet``."""
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


def _masks_for(table: pd.DataFrame, manifest: pd.DataFrame, geometry: Geometry) -> np.ndarray:
    """Ground-truth masks at the evaluation resolution, in the score table's order."""
    paths = manifest.set_index("sample_id").loc[table["sample_id"], "mask_path"].tolist()
    masks = np.zeros((len(paths), geometry.crop, geometry.crop), dtype=bool)
    for i, path in enumerate(paths):
        if isinstance(path, str):
            masks[i] = geometry.mask(load_mask(path))
    return masks


def provenance(wildcards, method_cfg: dict, state_dir: str | Path) -> dict:
    """Which data, method config, backbone and weights produced a result."""
    state = json.loads((Path(state_dir) / "state.json").read_text())
    features = state.get("features") or {}
    return {
        "dataset": wildcards.dataset,
        "method": wildcards.method,
        "category": wildcards.category,
        "kind": method_cfg["kind"],
        "method_config": method_cfg,
        "backbone": method_cfg.get("backbone"),
        "model": features.get("model"),
        "weights": features.get("weights"),
        "feature_config_hash": features.get("config_hash"),
    }


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
    masks = _masks_for(table, pd.read_parquet(manifest), geometry)
    result = evaluate_category(
        table["label"].to_numpy(),
        table["score"].to_numpy(),
        masks,
        np.asarray(maps_arr),
        fpr_limit=fpr_limit,
    )
    result = {"metrics": result, **provenance}
    save_json(out, result)
    return result


def aggregate(
    metric_files: list[str | Path],
    score_files: list[str | Path],
    map_files: list[str | Path],
    manifests: dict[str, str | Path],
    dataset_cfgs: dict[str, dict],
    csv_out: str | Path,
    md_out: str | Path,
    fpr_limit: float = 0.3,
) -> pd.DataFrame:
    """Per-category rows + macro mean + micro (pooled) rows -> CSV and Markdown."""
    rows = []
    for path in metric_files:
        record = json.loads(Path(path).read_text())
        rows.append(
            {
                "dataset": record["dataset"],
                "method": record["method"],
                "category": record["category"],
                "backbone": record.get("backbone"),
                "weights": record.get("weights"),
                **record["metrics"],
            }
        )
    per_category = pd.DataFrame(rows)
    micro_rows = []
    groups: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault((row["dataset"], row["method"]), []).append(i)
    for (dataset, method), members in sorted(groups.items()):
        tables = [pd.read_parquet(score_files[i]) for i in members]
        geometry = geometry_of(dataset_cfgs[dataset])
        manifest = pd.read_parquet(manifests[dataset])
        micro = micro_metrics(
            [t["label"].to_numpy() for t in tables],
            [t["score"].to_numpy() for t in tables],
            [_masks_for(t, manifest, geometry) for t in tables],
            [np.load(map_files[i]) for i in members],
            fpr_limit=fpr_limit,
        )
        micro_rows.append(
            {
                "dataset": dataset,
                "method": method,
                "category": "micro",
                "backbone": rows[members[0]]["backbone"],
                "weights": rows[members[0]]["weights"],
                **micro,
            }
        )
    summary = summarise(per_category, pd.DataFrame(micro_rows) if micro_rows else None)
    save_text(csv_out, summary.to_csv(index=False, float_format="%.6f"))
    save_text(md_out, to_markdown(summary))
    return summary
