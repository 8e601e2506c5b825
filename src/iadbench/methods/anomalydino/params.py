"""AnomalyDINO's parameters and needs (torch-free: the DAG build reads them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.backbones.registry import REGISTRY
from iadbench.errors import ConfigError
from iadbench.methods.params import Needs, Params, param
from iadbench.methods.shared import blur_border_param, num_nn_param

# The categories the authors mask (dammsi/AnomalyDINO src/utils.py, "agnostic" preprocessing):
# five MVTec AD objects, and every VisA class. The names do not overlap, so one list serves both.
PAPER_MASKED = (
    # MVTec AD
    "capsule",
    "hazelnut",
    "pill",
    "screw",
    "toothbrush",
    # VisA
    "candle",
    "capsules",
    "cashew",
    "chewinggum",
    "fryum",
    "macaroni1",
    "macaroni2",
    "pcb1",
    "pcb2",
    "pcb3",
    "pcb4",
    "pipe_fryum",
)
MASKING_SCHEMA = {
    "oneOf": [
        {"enum": ["paper"]},
        {"type": "boolean"},
        {"type": "array", "uniqueItems": True, "items": {"type": "string", "minLength": 1}},
    ]
}


@dataclass(frozen=True)
class AnomalyDinoParams(Params):
    """AnomalyDINO (METHODS §5.1): k-shot memory of DINOv2 patch tokens, 1-NN cosine distance,
    image score = mean of the top 1 % of patch distances."""

    implementation: ClassVar[str] = "iadbench.methods.anomalydino.method:AnomalyDino"
    timed: ClassVar[bool] = True
    entry_keys: ClassVar[dict[str, str]] = {
        **Params.entry_keys,
        "backbone": "a ViT entry with patch_size: 1 (token_norm: true and smaller_edge: 448 are "
        "the paper's tokens and geometry)",
        "seed": "references = the sorted train images [seed·shots, (seed+1)·shots)",
    }
    required_keys: ClassVar[tuple[str, ...]] = ("backbone",)

    shots: int = param(
        1,
        "k normal references: train images sorted by path, slice [seed·k, (seed+1)·k) as the "
        "authors' code (seeds draw disjoint references)",
        minimum=1,
    )
    rotation: bool = param(
        True,
        "add 7 rotated copies (45..315°, cv2.warpAffine bilinear, reflect-101 border) of each "
        "reference before encoding, the authors' 'agnostic' default (8 copies with the original)",
    )
    masking: str | bool | list = param(
        "paper",
        "PCA foreground masking of test images (background patches score 0): paper = the "
        "authors' list (MVTec AD capsule, hazelnut, pill, screw, toothbrush; every VisA class), "
        "true/false = every/no category, or a list of categories",
        schema=MASKING_SCHEMA,
    )
    mask_references: bool = param(
        False,
        "also drop the background patches of masked categories' references (--mask_ref_images)",
    )
    num_nn: int = num_nn_param()
    sigma: float = param(
        4,
        "Gaussian blur (px) of the map, at the evaluation size (the authors': at the original "
        "image size); 0 = none",
        minimum=0,
    )
    blur_border: str = blur_border_param()
    upsample: str = param(
        "bilinear",
        "patch grid -> map, before the blur: bilinear (the authors' cv2.resize) or nearest "
        "(anomalib 2.7.0's F.interpolate default)",
        enum=["bilinear", "nearest"],
    )

    def needs(self) -> Needs:
        return Needs(frozenset({"features"}), "per_category")

    def check_backbone(self, backbone: Mapping[str, Any]) -> None:
        model = backbone["model"]
        if REGISTRY[model].family != "vit":
            raise ConfigError(f"AnomalyDINO reads ViT patch tokens; {model} is not a ViT")
        if backbone.get("patch_size", 3) != 1 or backbone.get("dim") is not None:
            raise ConfigError(
                "AnomalyDINO compares the ViT's own tokens: set patch_size: 1 and no dim "
                "(the default patch_size 3 averages neighbouring tokens, PatchCore's aggregation)"
            )

    def masks(self, category: str) -> bool:
        """Whether test images of ``category`` are foreground-masked."""
        if isinstance(self.masking, bool):
            return self.masking
        listed = PAPER_MASKED if self.masking == "paper" else self.masking
        return category in listed

    def describe(self, state: dict) -> dict[str, Any]:
        features = state.get("features") or {}
        return {
            "backbone_model": features.get("model"),
            "weights": features.get("weights"),
            "shots": int(self.shots),
            "rotation": bool(self.rotation),
            "masked": state.get("masked"),
            "bank_size": state.get("bank_size"),
        }
