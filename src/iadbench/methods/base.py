"""The method interface every detector implements.

A method instance is built from its named config entry. The pipeline calls

* ``fit(train, state_dir)`` once per (method, dataset, category) when ``needs_train`` is true
  (``train`` may come from another dataset/category for cross-domain runs); zero-shot methods set
  ``needs_train = False`` and get ``train=None``;
* ``score(state_dir, test, out_size)`` -> per-image scores and per-pixel maps at ``out_size``.

State lives only in ``state_dir`` (memory banks, checkpoints, statistics), so a fitted model is a
cached file target like any other. Its ``state.json`` summary records, for methods that read the
feature store, ``feature_dim`` (the dimension the detector works in) and ``fusion`` (the fitted
:class:`~iadbench.features.fusion.FusionState`, reapplied unchanged at scoring time).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from iadbench.errors import CacheError
from iadbench.features.fusion import Fusion, FusionState, layer_dims_of
from iadbench.features.store import FeatureSet
from iadbench.io import save_json


class Method(ABC):
    """Base class: holds the config slice, the seed and the device."""

    kind: str = ""
    needs_train: bool = True

    def __init__(self, cfg: dict, device: str = "auto") -> None:
        self.cfg = cfg
        self.seed = int(cfg.get("seed", 0))
        self.device = device

    def save_state(
        self, state_dir: Path, train: FeatureSet, fusion: FusionState, feature_dim: int, **extra
    ) -> dict:
        """Write ``state.json``: what every fitted method records (see :func:`load_state`)."""
        summary = {
            "kind": self.kind,
            "config": self.cfg,
            "n_train_images": int(train.features.shape[0]),
            **extra,
            "feature_dim": int(feature_dim),
            "fusion": fusion.to_dict(),
            "features": train.meta,
        }
        save_json(Path(state_dir) / "state.json", summary)
        return summary

    @abstractmethod
    def fit(self, train: FeatureSet | None, state_dir: Path) -> dict:
        """Learn from normal training features; write state into ``state_dir``; return a summary."""

    @abstractmethod
    def score(
        self, state_dir: Path, test: FeatureSet, out_size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return image scores (N,) float64 and anomaly maps (N, H, W) float32."""


def fit_fusion(cfg: dict, train: FeatureSet) -> FusionState:
    """The entry's ``fusion:`` fitted on the training features' per-tap blocks."""
    layer_dims = layer_dims_of(train.meta, train.features.shape[-1])
    return Fusion.from_config(cfg.get("fusion")).fit(train.features, layer_dims)


def load_state(state_dir: Path, test: FeatureSet) -> dict:
    """A fitted state's ``state.json``, refusing test features from another backbone config."""
    state = json.loads((Path(state_dir) / "state.json").read_text())
    if state["features"]["config_hash"] != test.meta["config_hash"]:
        raise CacheError(
            f"{state_dir}: fitted on features {state['features']['config_hash']} but "
            f"test features are {test.meta['config_hash']} (different backbone config)"
        )
    return state
