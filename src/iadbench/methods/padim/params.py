"""PaDiM's parameters and needs (torch-free: the DAG build reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.methods.params import Needs, Params, param
from iadbench.methods.shared import (
    blur_border_param,
    check_fusion,
    describe_features,
    fusion_param,
)

# anomalib's ``_N_FEATURES_DEFAULTS`` (the paper's Rd100 / Rd550); anomalib refuses other
# backbones without an explicit n_features, here they fall back to the ResNet-18 choice.
N_FEATURES_DEFAULTS = {"resnet18": 100, "wide_resnet50_2": 550}
N_FEATURES_FALLBACK = 100


def default_n_features(model: str | None) -> int:
    """PaDiM's channel count for a backbone registry model when ``n_features`` is null."""
    return N_FEATURES_DEFAULTS.get(model or "", N_FEATURES_FALLBACK)


@dataclass(frozen=True)
class PadimParams(Params):
    """PaDiM (METHODS §1.2): one Gaussian per patch position on a random channel subset."""

    implementation: ClassVar[str] = "iadbench.methods.padim.method:Padim"
    timed: ClassVar[bool] = True

    fusion: str | dict = fusion_param(
        "concat",
        "how the backbone taps' channel blocks are combined: concat (all, unchanged), single, "
        "adaptive (equal total variance per tap), decay (tap l weighted f**l), or {mode: ...} "
        "with layer / weights / factor (iadbench.features.fusion)",
    )
    n_features: int | None = param(
        None,
        "random channels (seeded by seed; the reference code used 1024) kept from the fused "
        "features, capped at their number; null = by backbone model as the paper and anomalib "
        "(resnet18 100, wide_resnet50_2 550), 100 for any other model. The published geometry "
        "needs a backbone entry {model: ..., layers: [1, 2, 3], patch_size: 1, upsample: "
        "nearest} (layer1-3 at layer1's grid); the default entry reads PatchCore's features",
        minimum=1,
    )
    epsilon: float = param(
        0.01, "added to the covariance diagonal before inversion", exclusiveMinimum=0
    )
    sigma: float = param(4, "Gaussian blur of the upsampled Mahalanobis map (pixels)", minimum=0)
    blur_border: str = blur_border_param()

    def needs(self) -> Needs:
        return Needs(frozenset({"features"}), "per_category")

    def check(self) -> None:
        check_fusion(self.fusion)

    def describe(self, state: dict) -> dict[str, Any]:
        return describe_features(state)
