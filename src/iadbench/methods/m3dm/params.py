"""m3dm's parameters and needs (torch-free: the DAG build reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.errors import ConfigError
from iadbench.methods.multimodal.params import ENTRY_KEYS, MultimodalParams, encoders_param
from iadbench.methods.params import Needs, param
from iadbench.methods.shared import knn_backend_param, n_starts_param, projection_dim_param

STANDARDISE = ("reference", "per_bank")
RGB_CORESET = ("xyz_bank", "own")


@dataclass(frozen=True)
class M3dmParams(MultimodalParams):
    """M3DM-style decision-layer fusion (METHODS §6.1) of the post-weld photos and the sensors.

    RGB branch: cached patch tokens of every photo of a run (DINO ViT-B/8 in the reference).
    Point branch: the six sensor signals min/max-normalised with TRAIN statistics, averaged,
    interpolated to ``size`` points and tiled into a ``size``×``size`` depth map with x/y
    coordinates; a Point-MAE transformer (FPS ``num_group`` centres, kNN ``group_size``,
    mini-PointNet, ``depth`` blocks, ``taps``) whose group features are interpolated back to
    every point, 3×3-averaged and pooled to ``patch_grid``² patches. One memory bank per
    branch (greedy coreset), PatchCore's reweighted score per bank, and an SGDOneClassSVM
    fitted on the TRAIN runs' ``[lambda_xyz·s_xyz, lambda_rgb·s_rgb]``; its ``score_samples``
    is the run score (larger = more anomalous).
    """

    implementation: ClassVar[str] = "iadbench.methods.m3dm.method:M3dm"
    kind_name: ClassVar[str] = "m3dm"
    roles: ClassVar[tuple[str, ...]] = ("photo",)
    entry_keys: ClassVar[dict[str, str]] = {
        **ENTRY_KEYS,
        "seed": "the random Point-MAE weights and the coreset's projection and starts",
    }

    encoders: dict = encoders_param(
        "photo", doc="role -> key of encoders (a photo encoder; DINO ViT-B/8 in the reference)"
    )
    size: int = param(
        224, "side of the pseudo depth map: the averaged signal's points, tiled", minimum=4
    )
    weights: str = param(
        "random",
        "Point-MAE weights: random (seeded) or the path of a Point-MAE checkpoint (.pth)",
        minLength=1,
    )
    num_group: int = param(1024, "FPS centres (point groups) per run", minimum=1)
    group_size: int = param(128, "points per group (kNN of each centre)", minimum=1)
    trans_dim: int = param(384, "width of the point transformer", minimum=1)
    depth: int = param(12, "transformer blocks", minimum=1)
    heads: int = param(6, "attention heads (must divide trans_dim)", minimum=1)
    taps: list = param(
        [3, 7, 11],
        "blocks whose normalised outputs are concatenated (0-based)",
        type="array",
        minItems=1,
        uniqueItems=True,
        items={"type": "integer", "minimum": 0},
    )
    patch_grid: int = param(
        56, "point-feature patch grid after the 3x3 average (AdaptiveAvgPool)", minimum=1
    )
    coreset: float = param(
        0.1,
        "fraction of the xyz bank kept by the greedy coreset (1 = all)",
        exclusiveMinimum=0,
        maximum=1,
    )
    rgb_coreset: str = param(
        "xyz_bank",
        "rgb bank size: xyz_bank = coreset × the xyz coreset's size (the reference's code), "
        "own = coreset × the rgb patches",
        enum=list(RGB_CORESET),
    )
    projection_dim: int = projection_dim_param()
    n_starts: int = n_starts_param()
    standardise: str = param(
        "reference",
        "bank standardisation: reference = xyz mean and rgb std for both banks (the code's "
        "quirk); per_bank = each bank's own scalar mean and std",
        enum=list(STANDARDISE),
    )
    n_reweight: int = param(
        3, "PatchCore reweighting: neighbours of m* counted with m* itself", minimum=2
    )
    score_divisor: float = param(
        1000.0,
        "the reference divides bank distances by this before reweighting",
        exclusiveMinimum=0,
    )
    lambda_xyz: float = param(1.0, "weight of the point score in the fusion vector", minimum=0)
    lambda_rgb: float = param(0.1, "weight of the rgb score in the fusion vector", minimum=0)
    nu: float = param(0.5, "SGDOneClassSVM nu", exclusiveMinimum=0, maximum=1)
    max_iter: int = param(1000, "SGDOneClassSVM max_iter", minimum=1)
    svm_seed: int = param(42, "SGDOneClassSVM random_state (the reference's 42)", minimum=0)
    knn_backend: str = knn_backend_param()

    def needs(self) -> Needs:
        """Photos through the cached embeddings; sensors read from the CSVs (their point
        cloud depends on TRAIN statistics, so it is made by the method, not the embed rule)."""
        return Needs(
            frozenset({"images", "sensor"}),
            "per_category",
            maps=False,
            embeddings=(("photo", self.encoders["photo"]),),
        )

    def check(self) -> None:
        if self.trans_dim % self.heads:
            raise ConfigError(
                f"kind 'm3dm': heads {self.heads} must divide trans_dim {self.trans_dim}"
            )
        if max(self.taps) >= self.depth:
            raise ConfigError(f"kind 'm3dm': taps {self.taps} must be < depth {self.depth}")
        points = self.size * self.size
        if self.num_group > points or self.group_size > points:
            raise ConfigError(
                f"kind 'm3dm': num_group {self.num_group} and group_size {self.group_size} must "
                f"not exceed the size×size = {points} points"
            )
        if self.patch_grid > self.size - 2:
            raise ConfigError(
                f"kind 'm3dm': patch_grid {self.patch_grid} must be <= size - 2 = {self.size - 2}"
            )

    def describe(self, state: dict) -> dict[str, Any]:
        svm = state.get("svm") or {}
        return {
            **super().describe(state),
            "point_weights": state.get("point_weights"),
            "xyz_bank": state.get("xyz_bank_size"),
            "rgb_bank": state.get("rgb_bank_size"),
            "svm_coef": ",".join(f"{c:.6g}" for c in svm.get("coef") or []),
        }
