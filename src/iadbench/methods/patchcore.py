"""PatchCore (Roth et al., CVPR 2022) on cached locally aware patch features.

fit: all training patches -> approximate greedy coreset (``coreset`` fraction) -> memory bank.
score: patch score = L2 distance to the nearest bank patch (mean over ``num_nn`` neighbours);
map = bilinear upsampling to the evaluation size, then a Gaussian blur (``sigma``); image score
= max of the map times the paper's Eq. 7 reweighting factor, computed at the most anomalous patch
from the ``reweight_neighbors`` bank neighbours of its nearest bank patch (0 turns it off).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from iadbench.device import resolve_device
from iadbench.errors import CacheError
from iadbench.features.store import FeatureSet
from iadbench.io import save_json, save_npy
from iadbench.methods.base import Method
from iadbench.methods.coreset import approximate_greedy_coreset
from iadbench.methods.knn import knn

log = logging.getLogger(__name__)

DEFAULTS = {
    "coreset": 0.1,
    "projection_dim": 128,
    "n_starts": 10,
    "num_nn": 1,
    "reweight_neighbors": 9,
    "sigma": 4.0,
    "seed": 0,
}


def smooth_map(patch_scores: np.ndarray, out_size: tuple[int, int], sigma: float) -> np.ndarray:
    """(h, w) patch scores -> (H, W) map: bilinear (align_corners=False) then Gaussian blur."""
    tensor = torch.from_numpy(np.ascontiguousarray(patch_scores, dtype=np.float32))[None, None]
    up = F.interpolate(tensor, size=out_size, mode="bilinear", align_corners=False)[0, 0].numpy()
    return gaussian_filter(up, sigma=sigma) if sigma > 0 else up


def reweight(query: torch.Tensor, nearest: int, bank: torch.Tensor, neighbors: int) -> float:
    """Paper Eq. 7: 1 - softmax over distances to the ``neighbors`` bank neighbours of m*."""
    _, support = knn(bank[nearest : nearest + 1], bank, k=min(neighbors, bank.shape[0]))
    dists = torch.linalg.vector_norm(bank[support[0]] - query, dim=1)
    return float(1.0 - torch.softmax(dists.double(), dim=0)[0])


class PatchCore(Method):
    """Coreset memory bank + nearest-neighbour patch distances."""

    kind = "patchcore"
    needs_train = True

    def __init__(self, cfg: dict, device: str = "auto") -> None:
        super().__init__({**DEFAULTS, **cfg}, device)
        fraction = float(self.cfg["coreset"])
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"patchcore coreset fraction must be in (0, 1], got {fraction}")

    def fit(self, train: FeatureSet | None, state_dir: Path) -> dict:
        if train is None:
            raise ValueError("PatchCore needs training features")
        feats = torch.from_numpy(np.asarray(train.features, dtype=np.float32))
        patches = feats.reshape(-1, feats.shape[-1])
        n_keep = max(1, int(round(self.cfg["coreset"] * patches.shape[0])))
        if n_keep < patches.shape[0]:
            chosen = approximate_greedy_coreset(
                patches,
                n_keep,
                projection_dim=int(self.cfg["projection_dim"]),
                n_starts=int(self.cfg["n_starts"]),
                seed=self.seed,
                device=resolve_device(self.device),
            )
            bank = patches[chosen]
        else:
            bank = patches
        state_dir = Path(state_dir)
        save_npy(state_dir / "bank.npy", bank.numpy().astype(np.float32))
        summary = {
            "kind": self.kind,
            "config": self.cfg,
            "n_train_images": int(feats.shape[0]),
            "n_train_patches": int(patches.shape[0]),
            "bank_size": int(bank.shape[0]),
            "feature_dim": int(bank.shape[1]),
            "features": train.meta,
        }
        save_json(state_dir / "state.json", summary)
        log.info("patchcore bank: %d of %d patches", bank.shape[0], patches.shape[0])
        return summary

    def score(
        self, state_dir: Path, test: FeatureSet, out_size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        state_dir = Path(state_dir)
        state = json.loads((state_dir / "state.json").read_text())
        if state["features"]["config_hash"] != test.meta["config_hash"]:
            raise CacheError(
                f"{state_dir}: bank built from features {state['features']['config_hash']} but "
                f"test features are {test.meta['config_hash']} (different backbone config)"
            )
        device = resolve_device(self.device)
        bank = torch.from_numpy(np.load(state_dir / "bank.npy")).to(device)
        k = int(self.cfg["num_nn"])
        n_images, h, w, c = test.features.shape
        scores = np.empty(n_images, dtype=np.float64)
        maps = np.empty((n_images, *out_size), dtype=np.float32)
        for i in range(n_images):
            query = torch.from_numpy(np.asarray(test.features[i], dtype=np.float32))
            query = query.reshape(-1, c).to(device)
            dists, idx = knn(query, bank, k=k)
            patch = dists.mean(1)
            maps[i] = smooth_map(patch.reshape(h, w).cpu().numpy(), out_size, self.cfg["sigma"])
            weight = 1.0
            if self.cfg["reweight_neighbors"]:
                top = int(torch.argmax(patch))
                weight = reweight(
                    query[top], int(idx[top, 0]), bank, int(self.cfg["reweight_neighbors"])
                )
            scores[i] = weight * float(maps[i].max())
        return scores, maps
