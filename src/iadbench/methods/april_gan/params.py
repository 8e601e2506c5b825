"""APRIL-GAN's parameters and needs (torch-free: the DAG build reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.backbones.registry import resolve_layers
from iadbench.errors import ConfigError
from iadbench.methods.clip_trained.params import TEMPERATURE, LearnedClipParams, betas_param
from iadbench.methods.params import param
from iadbench.methods.shared import BLOCK_LIST, LAST_N


@dataclass(frozen=True)
class AprilGanParams(LearnedClipParams):
    """APRIL-GAN (METHODS §2.2): one trainable linear layer per tap on raw residual tokens.

    ``taps`` null = the backbone's registry blocks (6/12/18/24 of ViT-L, 1-indexed); the map is
    the sum over taps of each tap's two-class softmax against the text prototypes at
    ``temperature`` 0.01 (CLIP's scale 100); the image score is plain zero-shot CLIP (no
    training reaches it). Loss: focal + dice per tap, summed. Adam, lr 1e-3, betas (0.5, 0.999),
    batch 8, 3 epochs (the MVTec AD -> VisA recipe; 15 for VisA -> MVTec AD). ``mosaic``: the
    probability that a training image is replaced by a 2×2 mosaic of four images of its class
    and their masks (VAND's ``aug_rate``: 0.2 by default, as VAND trains on MVTec AD; its VisA
    dataset has no mosaic, so set ``mosaic: 0`` to train on VisA as the paper does).
    ``image_resize``/``mask_resize``: the training images' and masks' resize filters, VAND's by
    default (open_clip's bicubic ``preprocess``; torchvision's bilinear ``Resize`` of the 0/255
    mask, then > 0.5); ``bilinear``/``nearest`` are the dataset geometry's. ``mosaic_of``:
    VAND tiles the four full-size originals and resizes the mosaic once (``originals``).
    ``score_resize``: the scored images' filter (VAND's test preprocess is bicubic, the other
    CLIP kinds' views bilinear). ``focal_smooth``: VAND's FocalLoss label smoothing 1e-5, which
    sets the floor of a saturated wrong pixel's loss (-log 2e-5, not -log 1e-8). With these
    defaults our outputs equal VAND's code at equal weights (docs/reference-parity.md).
    """

    implementation: ClassVar[str] = "iadbench.methods.april_gan.method:AprilGan"
    kind_name: ClassVar[str] = "april_gan"
    order: ClassVar[tuple[str, ...]] = (
        "prompts", "class_name", "smooth_sigma", "focal_weight", "focal_smooth", "dice_weight",
        "batch_size", "amp", "taps", "temperature", "epochs", "lr", "betas", "mosaic",
        "mosaic_of", "image_resize", "mask_resize", "score_resize", "frozen_cache",
    )  # fmt: skip

    batch_size: int = param(8, "images per optimiser step", minimum=1)
    focal_smooth: float = param(
        1e-5,
        "focal loss label smoothing s (VAND's FocalLoss: p_t -> (1 - 2s) p_t + 2s, which floors "
        "a saturated wrong pixel's loss at -log 2e-5); 0 = plain focal (p_t floored at 1e-8)",
        minimum=0,
        maximum=0.5,
    )
    taps: list | str | None = param(
        None,
        "blocks whose raw residual tokens get a linear layer (0-based, negative from the end, or "
        '"lastN"); null = the backbone\'s registry blocks (6/12/18/24 of ViT-L)',
        schema={"oneOf": [{"type": "null"}, BLOCK_LIST, LAST_N]},
    )
    temperature: float | str = param(
        0.01,
        "two-class softmax temperature (0.01 = CLIP's scale 100), or learned",
        schema=TEMPERATURE,
    )
    epochs: int = param(3, "3 training on MVTec AD, 15 on VisA", minimum=1)
    lr: float = param(0.001, "Adam's learning rate", exclusiveMinimum=0)
    betas: list = betas_param([0.5, 0.999])
    mosaic: float = param(
        0.2,
        "probability of replacing a training image by a 2x2 mosaic of four images of its class "
        "and their masks, resized back (VAND's aug_rate 0.2, used when training on MVTec AD; "
        "VAND's VisA training has none: set 0 for it)",
        minimum=0,
        maximum=1,
    )
    mosaic_of: str = param(
        "originals",
        "what a mosaic tiles: originals = the four full-size images and masks, then the "
        "geometry applied once (VAND's combine_img + preprocess); crops = the four resized "
        "crops, the mosaic resized back to the crop (two resamplings, no file read)",
        enum=["originals", "crops"],
    )
    image_resize: str = param(
        "bicubic",
        "filter resizing the training images (and mosaics): bicubic = VAND's open_clip "
        "preprocess; bilinear = the dataset geometry's (the frozen-token cache's images)",
        enum=["bicubic", "bilinear"],
    )
    mask_resize: str = param(
        "bilinear",
        "filter resizing the training masks: bilinear of the 0/255 mask, then > 0.5 (VAND's "
        "Resize + threshold); nearest = the dataset geometry's (the evaluation masks')",
        enum=["bilinear", "nearest"],
    )

    score_resize: str = param(
        "bicubic",
        "filter resizing the images scored: bicubic = VAND's test preprocess (open_clip's PIL "
        "bicubic); bilinear = the dataset geometry's, as the other CLIP kinds read them",
        enum=["bicubic", "bilinear"],
    )

    def frozen_blocks(self, model: str) -> tuple[int, ...]:
        return resolve_layers(model, self.taps)

    def augmented(self) -> bool:
        # The cached frozen stream is made from the geometry's bilinear images.
        return float(self.mosaic) > 0 or self.image_resize != "bilinear"

    def check(self) -> None:
        if self.augmented() and self.frozen_cache is True:
            raise ConfigError(
                "april_gan mosaic > 0 changes the training images (frozen tokens differ every "
                "time) and image_resize bicubic differs from the cached stream's bilinear "
                "images, so a frozen-token cache cannot serve them; set frozen_cache: auto (off "
                "then) or false, or mosaic: 0 and image_resize: bilinear"
            )

    def describe(self, state: dict) -> dict[str, Any]:
        return {
            **super().describe(state),
            "mosaic": float(self.mosaic),
            "mosaic_of": self.mosaic_of,
            "image_resize": self.image_resize,
            "mask_resize": self.mask_resize,
            "score_resize": self.score_resize,
            "focal_smooth": float(self.focal_smooth),
        }
