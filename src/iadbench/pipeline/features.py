"""Feature steps: extraction into the store, reading it back, domain distances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from iadbench.io import save_json


def make_features(
    manifest: str | Path,
    category: str,
    split: str,
    backbone_cfg: dict,
    geometry: dict,
    npy: str | Path,
    index: str | Path,
    device: str = "auto",
) -> dict:
    """Extract one (category, split) of a dataset with one backbone config into the store."""
    from iadbench.features.extract import FeatureConfig, extract_features

    cfg = FeatureConfig.from_config(backbone_cfg, geometry)
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


def make_synthetic_features(
    manifest: str | Path,
    category: str,
    recipe: str,
    copies: int,
    seed: int,
    backbone_cfg: dict,
    geometry: dict,
    npy: str | Path,
    index: str | Path,
    device: str = "auto",
) -> dict:
    """Extract the synthetic anomalies of one category's train images into the store."""
    from iadbench.features.extract import FeatureConfig
    from iadbench.features.synthetic import extract_synthetic_features

    return extract_synthetic_features(
        pd.read_parquet(manifest),
        category,
        recipe,
        int(copies),
        int(seed),
        FeatureConfig.from_config(backbone_cfg, geometry),
        npy,
        index,
        device=device,
        batch_size=int(backbone_cfg.get("batch_size", 16)),
    )


def cached_features(npy: str | Path, index: str | Path, backbone_cfg: dict, geometry: dict):
    """A feature set from the store, refused unless it was extracted with this exact config."""
    from iadbench.features.extract import FeatureConfig
    from iadbench.features.store import load_features

    expected = FeatureConfig.from_config(backbone_cfg, geometry).hash()
    return load_features(npy, index, expect_hash=expected)


def _patch_sample(npy: str | Path, index: str | Path, backbone_cfg: dict, geometry: dict):
    features = cached_features(npy, index, backbone_cfg, geometry).features
    return np.asarray(features, dtype=np.float32).reshape(-1, features.shape[-1])


def feature_distance(
    a: tuple[str | Path, str | Path],
    b: tuple[str | Path, str | Path],
    backbone_cfg: dict,
    geometry: dict,
    out: str | Path,
    seed: int = 0,
    max_samples: int = 2000,
) -> dict:
    """MMD, sliced Wasserstein and cosine distance between two training-patch distributions."""
    from iadbench.metrics.domain import domain_distances

    x = _patch_sample(*a, backbone_cfg, geometry)
    y = _patch_sample(*b, backbone_cfg, geometry)
    result = domain_distances(x, y, seed=seed, max_samples=max_samples)
    save_json(out, result)
    return result
