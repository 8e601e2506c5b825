"""The classifier gate's parameters and needs (torch-free: the DAG build reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.errors import ConfigError
from iadbench.methods.params import Needs, Params, param

MODELS = ("efficientnet_lite0", "efficientnet_b0", "mobilenetv3_small_100")


@dataclass(frozen=True)
class ClassifierParams(Params):
    """A timm image classifier used as a cheap gate (METHODS §11), trained per category.

    Anomalies come from ``synthetic`` CutPaste/Scar copies of the normal training images or from
    the ``labelled`` split ``train_labelled``; the best epoch is chosen on ``val`` when the
    dataset has one, and the logits are temperature-scaled on ``val`` (``calibrate``).
    """

    implementation: ClassVar[str] = "iadbench.methods.classifier.method:Classifier"
    timed: ClassVar[bool] = True

    model: str = param(
        "efficientnet_lite0",
        "timm classifier (efficientnet_lite0 has real ImageNet weights offline)",
        enum=list(MODELS),
    )
    weights: str = param(
        "pretrained", "pretrained (local copy only) | random | path to a state dict"
    )
    anomalies: str = param(
        "synthetic",
        "where the anomaly class comes from: CutPaste/Scar copies of the normal training images, "
        "or the labelled split train_labelled (val_split.labelled_fraction)",
        enum=["synthetic", "labelled"],
    )
    synthetic: str = param(
        "mixed",
        "synthetic anomaly recipe: cutpaste, scar, perlin (DRAEM), nsa (Poisson), cutpaste_mixed "
        "(CutPaste or Scar), mixed (any of the four, one per draw)",
        enum=["cutpaste", "scar", "perlin", "nsa", "cutpaste_mixed", "mixed"],  # SYNTHETIC_MODES
    )
    texture_dir: str | None = param(
        None,
        "folder of texture images for the perlin recipe (null: the category's normal images)",
    )
    synthetic_per_image: int = param(1, "synthetic anomalies per normal image and epoch", minimum=1)
    epochs: int = param(
        10, "training epochs (the best on val is kept when there is one)", minimum=1
    )
    batch_size: int = param(16, "images per optimiser step", minimum=1)
    lr: float = param(0.001, "peak learning rate", exclusiveMinimum=0)
    weight_decay: float = param(0.0001, "weight decay of the optimiser", minimum=0)
    optimizer: str = param("adamw", "optimiser", enum=["adam", "adamw", "sgd"])
    schedule: str = param(
        "cosine", "learning-rate schedule: constant, or cosine to 0", enum=["constant", "cosine"]
    )
    class_weights: bool = param(True, "cross-entropy weighted by inverse class frequency")
    calibrate: bool = param(
        True, "temperature scaling of the logits on val (needs both classes there)"
    )

    def check(self) -> None:
        if self.texture_dir is not None and (
            self.anomalies != "synthetic" or self.synthetic not in ("perlin", "mixed")
        ):
            raise ConfigError(
                "classifier texture_dir is read only by the perlin recipe (anomalies: synthetic "
                f"with synthetic: perlin or mixed), got anomalies {self.anomalies!r}, synthetic "
                f"{self.synthetic!r}"
            )

    def needs(self) -> Needs:
        return Needs(frozenset({"images"}), "per_category", maps=False, probabilities=True)

    def splits_read(self) -> frozenset[str]:
        return frozenset({"train_labelled"}) if self.anomalies == "labelled" else frozenset()

    def describe(self, state: dict) -> dict[str, Any]:
        return {
            "backbone_model": self.model,
            "weights": state.get("weights"),
            "anomalies": self.anomalies,
            "synthetic": self.synthetic if self.anomalies == "synthetic" else None,
            "temperature": state.get("temperature"),
            "selection": state.get("selection"),
            "best_epoch": state.get("best_epoch"),
        }
