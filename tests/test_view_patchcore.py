"""PatchCore on the post-weld photos: bank from every TRAIN view, greedy coreset, max patch
distance per view, max or mean over a run's views, order by sample_id."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from iadbench.errors import CacheError, ConfigError
from iadbench.features.embeddings import INDEX_COLUMNS, EmbeddingSet
from iadbench.methods.base import MethodInputs
from iadbench.methods.kinds import params_of
from iadbench.methods.view_patchcore.method import ViewPatchCore
from iadbench.metrics.image import image_auroc

GRID = 4  # 4 x 4 patches per view
DIM = 8


def photo_split(split: str, labels: list[int], seed: int, views: int = 3):
    """Normal views: tokens near a few prototypes; an anomalous run has one view with a patch
    far from all of them."""
    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(5).normal(size=(6, DIM))
    rows, tokens, offset = [], [], 0
    for i, label in enumerate(labels):
        sid = f"{split}{i:03d}"
        for view in range(views):
            patches = prototypes[rng.integers(0, 6, GRID * GRID)]
            patches = patches + 0.05 * rng.normal(size=patches.shape)
            if label and view == 1:
                patches[5] += 4.0
            rows.append([sid, label, "x", split, view, offset, GRID * GRID, GRID, GRID])
            tokens.append(patches)
            offset += GRID * GRID
    store = EmbeddingSet(
        np.concatenate(tokens).astype(np.float16),
        pd.DataFrame(rows, columns=INDEX_COLUMNS),
        {"encoder": "dino", "modality": "photo", "dim": DIM, "config_hash": "h"},
    )
    index = pd.DataFrame({"sample_id": [f"{split}{i:03d}" for i in range(len(labels))],
                          "label": labels, "split": split})  # fmt: skip
    return index, store


def fitted(tmp_path, **overrides):
    method = ViewPatchCore({"kind": "view_patchcore", "knn_backend": "torch", **overrides}, "cpu")
    index, store = photo_split("train", [0] * 10, 1)
    state = method.fit(MethodInputs(index, cached={"embeddings": {"train": {"photo": store}}}),
                       tmp_path)  # fmt: skip
    return method, state


def test_bank_is_the_coreset_of_every_train_view(tmp_path):
    _, state = fitted(tmp_path)
    assert state["n_train_views"] == 30 and state["n_train_patches"] == 30 * GRID * GRID
    assert state["bank_size"] == round(0.1 * 480) == np.load(tmp_path / "bank.npy").shape[0]
    _, full = fitted(tmp_path / "full", coreset=1.0)
    assert full["bank_size"] == 480


@pytest.mark.parametrize("aggregate", ["max", "mean"])
def test_anomalous_runs_score_higher_in_manifest_order(tmp_path, aggregate):
    method, _ = fitted(tmp_path, aggregate=aggregate)
    index, store = photo_split("test", [0] * 5 + [1] * 5, 2)
    inputs = MethodInputs(index, cached={"embeddings": {"photo": store}})
    scores, maps, extra = method.score(tmp_path, inputs, (1, 1))
    assert scores.shape == (10,) and scores.dtype == np.float64 and maps is None and extra == {}
    assert image_auroc(index["label"], scores) == 1.0
    # the run score aggregates its views' max patch distances to the bank
    bank = torch.from_numpy(np.load(tmp_path / "bank.npy"))
    views = [torch.cdist(torch.from_numpy(store.sequence(r)), bank).min(1).values.max()
             for r in store.rows_of("test007")]  # fmt: skip
    reduce = max if aggregate == "max" else (lambda v: sum(v) / len(v))
    assert scores[7] == pytest.approx(float(reduce(views)), rel=1e-4)
    backwards = index.iloc[::-1].reset_index(drop=True)
    again, _, _ = method.score(tmp_path, MethodInputs(backwards, cached=inputs.cached), (1, 1))
    assert np.allclose(again, scores[::-1])


def test_missing_sample_other_encoder_and_anomalous_train_are_refused(tmp_path):
    method, _ = fitted(tmp_path)
    index, store = photo_split("test", [0, 1], 2)
    ghost = pd.concat([index, pd.DataFrame({"sample_id": ["ghost"], "label": [0]})])
    with pytest.raises(CacheError, match="lack 1 sample"):
        method.score(tmp_path, MethodInputs(ghost, cached={"embeddings": {"photo": store}}), (1, 1))
    store.meta = {**store.meta, "config_hash": "other"}
    with pytest.raises(CacheError, match="different encoder config"):
        method.score(tmp_path, MethodInputs(index, cached={"embeddings": {"photo": store}}), (1, 1))
    with pytest.raises(ValueError, match="normal runs only"):
        method.fit(
            MethodInputs(index, cached={"embeddings": {"train": {"photo": store}}}), tmp_path
        )


def test_needs_and_bad_parameters():
    needs = params_of({"kind": "view_patchcore", "encoders": {"photo": "dino"}}).needs()
    assert needs.embeddings == (("photo", "dino"),) and not needs.maps
    with pytest.raises(ConfigError, match="aggregate"):
        params_of({"kind": "view_patchcore", "aggregate": "min"})
    with pytest.raises(ConfigError, match="coreset"):
        params_of({"kind": "view_patchcore", "coreset": 0})
