"""Shared fixtures: tiny generated MVTec-layout trees and the real-data location."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from iadbench.features.store import FeatureSet
from iadbench.methods.base import MethodInputs

REPO = Path(__file__).resolve().parents[1]
# Plugin method kinds (kind: "module:Class") used by the tests of the kind mechanism.
PLUGINS = Path(__file__).resolve().parent / "plugins"
sys.path.insert(0, str(PLUGINS))
SHARED_MVTEC = REPO.parent / "shared" / "data" / "mvtec_ad"


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def feature_set(features: np.ndarray, layer_dims=None, config_hash: str = "h") -> FeatureSet:
    """An in-memory fp16 feature set, as the store would hand it to a method."""
    meta = {"config_hash": config_hash}
    if layer_dims is not None:
        meta["layer_dims"] = layer_dims
    index = pd.DataFrame({"sample_id": [f"s{i}" for i in range(len(features))]})
    return FeatureSet(features=features.astype(np.float16), index=index, meta=meta)


def feature_inputs(features: np.ndarray, layer_dims=None, config_hash: str = "h") -> MethodInputs:
    """:func:`feature_set` wrapped as the inputs a feature method's fit/score reads."""
    return MethodInputs.of_features(feature_set(features, layer_dims, config_hash))


@pytest.fixture
def tiny_mvtec(tmp_path: Path) -> Path:
    """One category 'widget': 3 train good, 2 test good, 2 'dent' with masks."""
    root = tmp_path / "mvtec"
    rng = np.random.default_rng(0)
    cat = root / "widget"
    for i in range(3):
        write_png(
            cat / "train" / "good" / f"{i:03d}.png", rng.integers(0, 255, (32, 32, 3), np.uint8)
        )
    for i in range(2):
        write_png(
            cat / "test" / "good" / f"{i:03d}.png", rng.integers(0, 255, (32, 32, 3), np.uint8)
        )
        write_png(
            cat / "test" / "dent" / f"{i:03d}.png", rng.integers(0, 255, (32, 32, 3), np.uint8)
        )
        mask = np.zeros((32, 32), np.uint8)
        mask[4:10, 4:10] = 255
        write_png(cat / "ground_truth" / "dent" / f"{i:03d}_mask.png", mask)
    return root


@pytest.fixture
def shared_mvtec() -> Path:
    if not (SHARED_MVTEC / "bottle").is_dir():
        pytest.skip(f"real MVTec AD data not found at {SHARED_MVTEC} (../shared is absent)")
    return SHARED_MVTEC


@pytest.fixture(scope="module")
def tiny():
    """The registered tiny CLIP (4 blocks, 8x8 grid at 64 px) with seeded random weights."""
    from iadbench.clip.encoder import load_clip

    return load_clip("clip_tiny", "random", seed=0)


@pytest.fixture
def images():
    """Two normalised 64 px images for the tiny CLIP."""
    import torch

    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
