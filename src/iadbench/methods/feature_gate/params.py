"""The feature gate's parameters and needs (torch-free: the DAG build reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.methods.params import Needs, Params, param

POOLING = ("mean_max", "mean", "max")


@dataclass(frozen=True)
class FeatureGateParams(Params):
    """A cheap gate on the cached backbone features the heatmap method reads (issue 25).

    Each image's patch features are pooled into one vector; a logistic regression (or a 2-layer
    MLP) separates the normal ``train`` images from synthetic anomalies of them, whose features
    the feature stage caches once; the margin is temperature-scaled on ``val``. With the heatmap
    method's ``backbone`` it adds no backbone pass of its own.
    """

    implementation: ClassVar[str] = "iadbench.methods.feature_gate.method:FeatureGate"
    timed: ClassVar[bool] = True

    synthetic: str = param(
        "mixed",
        "synthetic anomaly recipe (iadbench.data.synthetic): cutpaste, scar, perlin, nsa, "
        "cutpaste_mixed or mixed (any of the four)",
        enum=["cutpaste", "scar", "perlin", "nsa", "cutpaste_mixed", "mixed"],
    )
    synthetic_per_image: int = param(
        2, "synthetic anomalies per normal train image (cached once)", minimum=1, maximum=64
    )
    synthetic_seed: int = param(0, "seed of the synthetic anomalies (part of the cache path)",
                                minimum=0)  # fmt: skip
    pooling: str = param(
        "mean_max",
        "per-image vector from the patch features: mean and max over patches (concatenated), "
        "or one of them",
        enum=list(POOLING),
    )
    hidden: int | None = param(
        None,
        "null: logistic regression; a number: a 2-layer MLP (ReLU) with that many hidden units",
        minimum=1,
    )
    c: float = param(
        1.0,
        "inverse L2 strength: scikit-learn's C of the logistic regression, 1/alpha of the MLP",
        exclusiveMinimum=0,
    )
    calibrate: bool = param(True, "temperature scaling of the margin on val (needs both classes)")

    def needs(self) -> Needs:
        return Needs(
            frozenset({"features"}),
            "per_category",
            maps=False,
            probabilities=True,
            fit_features=("val",),
            synthetic_features=(
                self.synthetic,
                int(self.synthetic_per_image),
                int(self.synthetic_seed),
            ),
        )

    def splits_read(self) -> frozenset[str]:
        return frozenset({"val"})

    def describe(self, state: dict) -> dict[str, Any]:
        return {
            "anomalies": "synthetic",
            "synthetic": self.synthetic,
            "head": "logistic" if self.hidden is None else f"mlp{self.hidden}",
            "temperature": state.get("temperature"),
        }
