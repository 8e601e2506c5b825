"""PatchCore's parameters and needs (torch-free: the DAG build reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.methods.params import Needs, Params, param
from iadbench.methods.shared import (
    blur_border_param,
    check_fusion,
    describe_features,
    fusion_param,
    knn_backend_param,
    n_starts_param,
    num_nn_param,
    projection_dim_param,
)

BANKS = ("greedy", "full", "random", "pca", "kmeans")


@dataclass(frozen=True)
class PatchCoreParams(Params):
    """PatchCore (METHODS §1.1): memory bank of training patches, nearest-neighbour distances."""

    implementation: ClassVar[str] = "iadbench.methods.patchcore.method:PatchCore"
    timed: ClassVar[bool] = True

    coreset: float = param(
        0.1,
        "fraction of training patches kept by the greedy or random bank (1 = all)",
        exclusiveMinimum=0,
        maximum=1,
    )
    projection_dim: int = projection_dim_param()
    n_starts: int = n_starts_param()
    num_nn: int = num_nn_param()
    reweight_neighbors: int = param(
        9,
        "neighbours for the paper's Eq. 7 image-score reweighting (0 or 1 = off, as anomalib: "
        "one neighbour's softmax is 1)",
        minimum=0,
    )
    sigma: float = param(4, "Gaussian blur (px) of the upsampled map; 0 = none", minimum=0)
    blur_border: str = blur_border_param()
    upsample: str = param(
        "bilinear",
        "patch-score grid -> evaluation size, before the Gaussian blur",
        enum=["bilinear", "nearest"],
    )
    image_score: str = param(
        "map_max",
        "image score before reweighting: max of the smoothed map, or max of the raw patch "
        "distances (the paper's s*)",
        enum=["map_max", "patch_max"],
    )
    fusion: str | dict = fusion_param(
        "concat",
        "concat (the reference's: every tap's channels unchanged), or decay (tap weights f**l, "
        "f = 0.5: [1, 0.5] for two taps; a variant, see docs/reference-parity.md), single, "
        "weighted, adaptive",
    )
    bank: str = param(
        "greedy",
        "memory bank: greedy (approximate greedy coreset of coreset), full (every training "
        "patch), random (seeded uniform subsample of coreset), pca (every patch, projected to "
        "pca_dim principal components), kmeans (k centroids, see kmeans)",
        enum=list(BANKS),
    )
    pca_dim: int = param(
        128, "principal components kept by bank pca (at most the fused dimension)", minimum=1
    )
    k: int = param(1000, "centroids of bank kmeans (all patches when k >= their number)", minimum=1)
    kmeans: str = param(
        "faiss",
        "clustering of bank kmeans: faiss's Lloyd k-means (the faiss extra; 2.6-9x faster at "
        "k = 1000) or scikit-learn's MiniBatchKMeans; the two give different banks, so the choice "
        "is a parameter, never what happens to be installed",
        enum=["faiss", "sklearn"],
    )
    knn_backend: str = knn_backend_param()

    def needs(self) -> Needs:
        return Needs(frozenset({"features"}), "per_category")

    def check(self) -> None:
        check_fusion(self.fusion)

    def describe(self, state: dict) -> dict[str, Any]:
        bank = state.get("bank") or {}
        return {
            **describe_features(state),
            "bank": bank.get("kind"),
            "bank_size": state.get("bank_size"),
            **({"kmeans": bank["clustering"]} if bank.get("clustering") else {}),
        }
