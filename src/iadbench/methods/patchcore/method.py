"""PatchCore (Roth et al., CVPR 2022) on cached locally aware patch features.

fit: training features -> layer fusion (``fusion``) -> memory bank (``bank``: by default the
approximate greedy coreset keeping ``coreset`` of the patches; see :mod:`..banks`).
score: patch score = L2 distance to the nearest bank patch (mean over ``num_nn`` neighbours,
searched with ``knn_backend``); map = ``upsample`` (bilinear or nearest) to the evaluation size,
then a Gaussian blur (``sigma``, border ``blur_border``); image score = the max of the smoothed
map (``image_score: map_max``) or of the raw patch scores (``patch_max``, the paper's s*),
times the paper's Eq. 7 reweighting factor, computed at the most anomalous patch from the
``reweight_neighbors`` bank neighbours of its nearest bank patch (0 or 1 turns it off, as
anomalib: one neighbour's softmax is 1, which would make every image score 0).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from iadbench.device import resolve_device
from iadbench.features.fusion import FusionState
from iadbench.methods.banks import Bank, build_bank
from iadbench.methods.base import Method, MethodInputs, check_features, fit_fusion, load_state
from iadbench.methods.knn import KnnIndex, resolve_backend
from iadbench.methods.patchcore.params import PatchCoreParams
from iadbench.methods.smoothing import smooth_map

log = logging.getLogger(__name__)

QUERY_ROWS = 2**14  # test patches searched per batch


def reweight(query: torch.Tensor, nearest: int, index: KnnIndex, neighbors: int) -> float:
    """Paper Eq. 7: 1 - softmax over distances to the ``neighbors`` bank neighbours of m*.

    ``neighbors`` <= 1 is no reweighting (1.0), as anomalib's ``compute_anomaly_score`` (``if
    num_neighbors == 1: return patch_scores.amax(1)``).
    """
    if neighbors <= 1:
        return 1.0
    bank = index.bank
    _, support = index.search(bank[nearest : nearest + 1], k=min(neighbors, len(index)))
    dists = torch.linalg.vector_norm(bank[support[0]] - query, dim=1)
    return float(1.0 - torch.softmax(dists.double(), dim=0)[0])


class PatchCore(Method):
    """Memory bank of training patches + nearest-neighbour patch distances."""

    kind = "patchcore"
    params_class = PatchCoreParams
    params: PatchCoreParams

    def __init__(self, cfg: dict, device: str = "auto") -> None:
        super().__init__(cfg, device)
        resolve_backend(self.params.knn_backend)

    def fit(self, train: MethodInputs, state_dir: Path) -> dict:
        train = train.require_features("PatchCore")
        fusion = fit_fusion(self.params.fusion, train)
        feats = fusion.apply(train.features)
        patches = torch.from_numpy(feats.reshape(-1, feats.shape[-1]))
        bank = build_bank(patches, self.params, self.seed, resolve_device(self.device))
        state_dir = Path(state_dir)
        summary = self.save_state(
            state_dir,
            train,
            fusion,
            bank.dim,
            n_train_patches=int(patches.shape[0]),
            bank=bank.save(state_dir),
            bank_size=len(bank.vectors),
        )
        log.info("patchcore %s bank: %d of %d patches", bank.kind, len(bank.vectors), len(patches))
        return summary

    def scorer(self, state_dir: Path):
        """Load the bank and build the kNN index once; the returned function scores inputs."""
        state_dir = Path(state_dir)
        state = load_state(state_dir)
        device = resolve_device(self.device)
        fusion = FusionState.from_dict(state["fusion"])
        bank = Bank.load(state_dir, state["bank"]["kind"], device)
        index = KnnIndex(bank.vectors, backend=self.params.knn_backend, device=device)
        log.info("patchcore kNN backend: %s on %s", index.backend, device)

        def score(inputs: MethodInputs, out_size: tuple[int, int]):
            test = inputs.require_features("PatchCore")
            check_features(state_dir, state, test)
            return self._score(test, fusion, bank, index, device, out_size)

        return score

    def score(self, state_dir: Path, inputs: MethodInputs, out_size: tuple[int, int]):
        return self.scorer(state_dir)(inputs, out_size)

    def _score(self, test, fusion, bank, index, device, out_size):
        p = self.params
        k, neighbors = int(p.num_nn), int(p.reweight_neighbors)
        sigma, mode = p.sigma, p.upsample
        from_map = p.image_score == "map_max"
        n_images, h, w, _ = test.features.shape
        scores = np.empty(n_images, dtype=np.float64)
        maps = np.empty((n_images, *out_size), dtype=np.float32)
        step = max(1, QUERY_ROWS // (h * w))
        for start in range(0, n_images, step):
            feats = torch.from_numpy(fusion.apply(test.features[start : start + step]))
            queries = bank.project(feats.reshape(-1, feats.shape[-1]).to(device))
            dists, idx = index.search(queries, k)
            patch = dists.mean(1).reshape(-1, h * w)
            for j, row in enumerate(patch):
                i = start + j
                maps[i] = smooth_map(
                    row.reshape(h, w).cpu().numpy(), out_size, sigma, mode, p.blur_border
                )
                weight = 1.0
                if neighbors > 1:
                    top = j * h * w + int(torch.argmax(row))
                    weight = reweight(queries[top], int(idx[top, 0]), index, neighbors)
                scores[i] = weight * float(maps[i].max() if from_map else row.max())
        return scores, maps
