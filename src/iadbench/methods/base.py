"""The method interface every detector implements.

A method instance is built from its named config entry (:func:`iadbench.methods.build_method`);
its parameters come from the kind's dataclass (``methods/<kind>/params.py``, registered in
:mod:`iadbench.methods.kinds`), which also says what the method needs
(:class:`~iadbench.methods.params.Needs`). The pipeline calls, by
``needs.training``:

* ``per_category``: ``fit(train, state_dir)`` once per (method, dataset, category) on that
  category's ``train`` split (or another category's, for the cross-category study);
* ``train_set``: ``train(parts, out_dir, resume_dir)`` once per (method, train set), with one
  :class:`MethodInputs` per category of the train set;
* ``per_dataset``: the same ``train(parts, out_dir, resume_dir)`` once per (method, dataset),
  with one part per category of the dataset (its ``train`` split): multi-class models;
* ``none``: nothing;

then ``score(state_dir, inputs, out_size)`` -> per-image scores and per-pixel maps at
``out_size`` for any split of any dataset (``state_dir`` is None for zero-shot methods).

State lives only in ``state_dir`` (memory banks, checkpoints, statistics), so a fitted model is a
cached file target like any other. Its ``state.json`` records what :meth:`Params.describe` turns
into provenance columns; for methods that read the feature store that is ``feature_dim`` and
``fusion`` (the fitted :class:`~iadbench.features.fusion.FusionState`, reapplied unchanged at
scoring time) and the features' identity.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from iadbench.errors import CacheError
from iadbench.features.fusion import Fusion, FusionState, layer_dims_of
from iadbench.features.store import FeatureSet
from iadbench.io import save_json
from iadbench.methods.params import Params


@dataclass
class MethodInputs:
    """What one fit/train/score call reads; which fields are set follows the kind's ``needs``.

    ``index`` has one row per sample in output order (``sample_id``, ``category``, ``label``,
    ``defect_type`` and, from the manifest, ``image_path``...); ``features`` is the cached
    feature set of those samples; ``scores`` maps a ``uses`` role to that method's score table.
    ``rows`` are all manifest rows of the category (every split): a fit may read ``val`` for
    model selection or ``train_labelled`` for labelled anomalies, never ``test``.
    ``dataset`` is the dataset's config slice (geometry) for methods that read images;
    ``backbone`` the method's backbone entry (methods that run their encoder themselves, e.g. on
    few-shot references); ``cached`` the CLIP outputs it reads (``visual``, ``windows``,
    ``text``, ``noisy_text``: arrays, visual ones in ``index`` order, plus their ``meta``).
    """

    index: pd.DataFrame
    features: FeatureSet | None = None
    scores: dict[str, pd.DataFrame] = field(default_factory=dict)
    rows: pd.DataFrame | None = None
    dataset: dict = field(default_factory=dict)
    backbone: dict | None = None
    cached: dict[str, dict] = field(default_factory=dict)

    def split_rows(self, split: str) -> pd.DataFrame:
        """The category's manifest rows of one split (``test`` is refused: it is reported)."""
        if split == "test":
            raise ValueError("a fit must not read the reported test split")
        if self.rows is None:
            return self.index.iloc[:0]
        return self.rows[self.rows["split"] == split].reset_index(drop=True)

    @classmethod
    def of_features(cls, features: FeatureSet) -> MethodInputs:
        return cls(index=features.index, features=features)

    def require_features(self, who: str) -> FeatureSet:
        if self.features is None:
            raise ValueError(f"{who} needs cached features")
        return self.features


class Method(ABC):
    """Base class: holds the typed parameters (``params``, what implementations read), the seed,
    the device and ``cfg``, the parameters and seed as one record for state.json."""

    kind: str = ""
    params_class: type[Params] = Params

    def __init__(self, cfg: dict, device: str = "auto") -> None:
        self.params = self.params_class.from_entry(cfg)
        self.seed = int(cfg.get("seed", 0))
        self.cfg = {**self.params.to_dict(), "seed": self.seed}
        self.device = device

    def save_state(
        self, state_dir: Path, train: FeatureSet, fusion: FusionState, feature_dim: int, **extra
    ) -> dict:
        """Write ``state.json`` of a method fitted on features (see :func:`load_state`)."""
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

    def fit(self, train: MethodInputs, state_dir: Path) -> dict:
        """Per-category fit on normal training data; write state into ``state_dir``."""
        raise NotImplementedError(f"{self.kind} has no per-category fit")

    def train(self, parts: list[MethodInputs], out_dir: Path, resume_dir: Path) -> dict:
        """Training on a named train set (one entry per category); resumable from ``resume_dir``."""
        raise NotImplementedError(f"{self.kind} is not trained on a train set")

    def scorer(self, state_dir: Path | None):
        """A function ``(inputs, out_size) -> score()'s result`` with the model loaded once.

        Kinds whose state is costly to load (memory banks, networks) override it, so per-image
        latency measures inference, not loading.
        """
        return lambda inputs, out_size: self.score(state_dir, inputs, out_size)

    def latency(
        self, state_dir: Path | None, rows: pd.DataFrame, dataset_cfg: dict, backbone_cfg: dict
    ) -> np.ndarray:
        """Seconds per image of the whole inference path on ``rows`` (one image at a time).

        Default for kinds that read cached features: decode, geometry, backbone, patch features
        and scoring, after one warm-up image; the model is loaded once, outside the timing.
        """
        from iadbench.data.images import load_image
        from iadbench.device import resolve_device
        from iadbench.features.extract import FeatureConfig, patch_features

        cfg = FeatureConfig.from_config(backbone_cfg, dataset_cfg)
        device = resolve_device(self.device)
        backbone = cfg.load_backbone(device)
        score, crop = self.scorer(state_dir), cfg.geometry.crop
        identity = {**cfg.identity(), "config_hash": cfg.hash()}

        def one(i: int) -> None:
            image = cfg.image(load_image(rows["image_path"].iloc[i]), backbone.patch)
            feats, dims = patch_features(backbone, [image], cfg, device)
            meta = {**identity, "layer_dims": dims}
            features = FeatureSet(features=feats, index=rows.iloc[i : i + 1], meta=meta)
            inputs = MethodInputs(features.index, features, dataset=dict(dataset_cfg))
            score(inputs, (crop, crop))

        return time_each(one, len(rows), device)

    @abstractmethod
    def score(self, state_dir: Path | None, inputs: MethodInputs, out_size: tuple[int, int]):
        """Return image scores (N,) float64 and anomaly maps (N, H, W) float32 (None when the
        kind has no maps), optionally followed by a dict of extra per-image score columns."""


def time_each(run, n: int, device) -> np.ndarray:
    """Seconds per call of ``run(i)`` for i < n, after one untimed warm-up call."""
    import time

    import torch

    def sync() -> None:
        if getattr(device, "type", "cpu") == "cuda":
            torch.cuda.synchronize(device)

    run(0)
    sync()
    seconds = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        run(i)
        sync()
        seconds[i] = time.perf_counter() - start
    return seconds


def fit_fusion(fusion: str | dict | None, train: FeatureSet) -> FusionState:
    """A ``fusion:`` parameter fitted on the training features' per-tap blocks."""
    layer_dims = layer_dims_of(train.meta, train.features.shape[-1])
    return Fusion.from_config(fusion).fit(train.features, layer_dims)


def load_state(state_dir: Path) -> dict:
    """A fitted state's ``state.json``."""
    return json.loads((Path(state_dir) / "state.json").read_text())


def check_features(state_dir: Path, state: dict, test: FeatureSet) -> None:
    """Refuse test features from another backbone config than the fit's."""
    if state["features"]["config_hash"] != test.meta["config_hash"]:
        raise CacheError(
            f"{state_dir}: fitted on features {state['features']['config_hash']} but "
            f"test features are {test.meta['config_hash']} (different backbone config)"
        )
