"""PatchCore on the post-weld photos (METHODS §6.3): the image-only weld baseline.

The memory bank holds the patch tokens of every view of every TRAIN run, thinned by the
project's approximate greedy coreset; a view scores the largest nearest-neighbour distance of
its patches and a run the max (or mean) over its views. No maps: the weld data has no masks.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from iadbench.device import resolve_device
from iadbench.io import save_json, save_npy
from iadbench.methods.base import Method, MethodInputs, load_state
from iadbench.methods.coreset import approximate_greedy_coreset
from iadbench.methods.knn import KnnIndex, resolve_backend
from iadbench.methods.multimodal.stores import (
    check_identities,
    identities,
    labels_of,
    rows_by_sample,
    split_stores,
    stores_of,
)
from iadbench.methods.view_patchcore.params import ViewPatchCoreParams

log = logging.getLogger(__name__)

ROLES = ("photo",)


class ViewPatchCore(Method):
    kind = "view_patchcore"
    params_class = ViewPatchCoreParams
    params: ViewPatchCoreParams

    def __init__(self, cfg: dict, device: str = "auto") -> None:
        super().__init__(cfg, device)
        resolve_backend(self.params.knn_backend)

    def fit(self, train: MethodInputs, state_dir: Path) -> dict:
        if labels_of(train.index).any():
            raise ValueError(
                "view_patchcore fits on normal runs only, but TRAIN holds anomalous ones"
            )
        store = split_stores(train.cached, "train", ROLES, self.kind)["photo"]
        rows = [
            r
            for rs in rows_by_sample(store, train.index["sample_id"].tolist(), "photo")
            for r in rs
        ]
        patches = torch.from_numpy(np.concatenate([store.sequence(r) for r in rows]))
        n_keep = max(1, round(float(self.params.coreset) * len(patches)))
        device = resolve_device(self.device)
        if n_keep < len(patches):
            chosen = approximate_greedy_coreset(
                patches,
                n_keep,
                projection_dim=int(self.params.projection_dim),
                n_starts=int(self.params.n_starts),
                seed=self.seed,
                device=device,
            )
            patches = patches[chosen.cpu()]
        state_dir = Path(state_dir)
        save_npy(state_dir / "bank.npy", patches.numpy())
        state = {
            "kind": self.kind,
            "config": self.cfg,
            "embeddings": identities({"photo": store}),
            "n_train_runs": len(train.index),
            "n_train_views": len(rows),
            "n_train_patches": int(sum(store.index["length"].iat[r] for r in rows)),
            "bank_size": len(patches),
        }
        save_json(state_dir / "state.json", state)
        log.info("view_patchcore bank: %d of %d patches", len(patches), state["n_train_patches"])
        return state

    def scorer(self, state_dir: Path):
        """Load the bank and build the kNN index once; the returned function scores a split."""
        state_dir = Path(state_dir)
        state = load_state(state_dir)
        device = resolve_device(self.device)
        bank = torch.from_numpy(np.load(state_dir / "bank.npy"))
        index = KnnIndex(bank, backend=self.params.knn_backend, device=device)
        k = min(int(self.params.num_nn), len(index))
        reduce = np.max if self.params.aggregate == "max" else np.mean

        def view_score(tokens: np.ndarray) -> float:
            dists, _ = index.search(torch.from_numpy(tokens), k)
            return float(dists.mean(1).max())

        def score(inputs: MethodInputs, out_size: tuple[int, int]):
            stores = stores_of(inputs.cached, ROLES, self.kind)
            check_identities(state, stores, str(state_dir))
            store = stores["photo"]
            per_run = rows_by_sample(store, inputs.index["sample_id"].tolist(), "photo")
            scores = [reduce([view_score(store.sequence(r)) for r in rows]) for rows in per_run]
            return np.asarray(scores, dtype=np.float64), None, {}

        return score

    def score(self, state_dir: Path, inputs: MethodInputs, out_size: tuple[int, int]):
        return self.scorer(state_dir)(inputs, out_size)
