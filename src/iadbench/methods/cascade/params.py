"""The cascade's parameters and needs (torch-free: the DAG build reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.errors import ConfigError
from iadbench.methods.params import Needs, Params, param

PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}


@dataclass(frozen=True)
class CascadeParams(Params):
    """Gate -> heatmap cascade (METHODS §11): calibrated on ``val``, routed by two thresholds.

    ``thresholds: [t_low, t_high]`` fixes the uncertain band; without it the pair with the
    fewest heatmap calls whose ``val`` recall is at least the heatmap method's minus
    ``max_recall_loss`` is chosen from ``grid_low`` x ``grid_high``, or, with a budget
    ``max_call_rate``, the pair of best val F1 among those calling the heatmap method on at most
    that share of val images (the grid plus every band between val gate probabilities that fits
    the budget). The operating threshold is
    chosen on ``val`` by ``operating`` (max F1, or the highest threshold reaching
    ``target_recall``).
    """

    implementation: ClassVar[str] = "iadbench.methods.cascade.method:Cascade"
    required_keys: ClassVar[tuple[str, ...]] = ("uses",)

    calibration: str = param(
        "platt",
        "how the heatmap method's raw image score becomes a probability (on val)",
        enum=["platt", "isotonic"],  # two of iadbench.metrics.calibration.METHODS
    )
    thresholds: list | None = param(
        None,
        "[t_low, t_high]: gate probabilities in between go to the heatmap method; null chooses "
        "the pair on val (fewest heatmap calls within max_recall_loss)",
        minItems=2,
        maxItems=2,
        items=PROBABILITY,
    )
    grid_low: list = param(
        [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4],
        "candidate t_low values when thresholds is null",
        minItems=1,
        items=PROBABILITY,
    )
    grid_high: list = param(
        [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99],
        "candidate t_high values when thresholds is null",
        minItems=1,
        items=PROBABILITY,
    )
    max_recall_loss: float = param(
        0.02, "val recall the cascade may lose against the heatmap method alone", **PROBABILITY
    )
    max_call_rate: float | None = param(
        None,
        "budget: the best cascade on val (F1 at its threshold) calling the heatmap method on at "
        "most this share of val images; replaces max_recall_loss (null: not used)",
        exclusiveMinimum=0,
        maximum=1,
    )
    operating: str = param(
        "max_f1", "how the operating threshold is chosen on val", enum=["max_f1", "recall"]
    )
    target_recall: float = param(
        0.95,
        "with operating recall, the highest threshold reaching this recall",
        exclusiveMinimum=0,
        maximum=1,
    )

    def needs(self) -> Needs:
        return Needs(
            frozenset({"scores"}),
            "per_category",
            maps=False,
            uses=("gate", "heatmap"),
            fit_on="val",
            probabilities=True,
        )

    def check(self) -> None:
        if self.thresholds is not None:
            lo, hi = self.thresholds
            if not lo < hi:
                raise ConfigError(
                    f"cascade thresholds need [t_low, t_high] with 0 <= t_low < t_high <= 1, "
                    f"got {self.thresholds}"
                )
            if self.max_call_rate is not None:
                raise ConfigError(
                    "cascade max_call_rate chooses the band on val; it cannot go with fixed "
                    f"thresholds {self.thresholds} (set one of them to null)"
                )
        elif self.max_call_rate is None and not any(
            lo < hi for lo in self.grid_low for hi in self.grid_high
        ):
            raise ConfigError("cascade grid_low x grid_high holds no pair with t_low < t_high")

    def describe(self, state: dict) -> dict[str, Any]:
        return {
            "t_low": state.get("t_low"),
            "t_high": state.get("t_high"),
            "calibration": self.calibration,
            "band_selection": state.get("band_selection"),
            "val_recall_loss": state.get("val_recall_loss"),
            "degenerate_scores": state.get("degenerate_scores"),
        }
