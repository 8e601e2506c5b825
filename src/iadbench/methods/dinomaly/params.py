"""Dinomaly's parameters and needs (torch-free: the DAG build reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.errors import ConfigError
from iadbench.methods.params import Needs, Params, param

# The DINOv2-reg encoders of the backbone registry Dinomaly runs (tiny: tests and the demo).
ENCODERS = ("dinov2_vits14_reg4", "dinov2_vitb14_reg4", "dinov2_vitl14_reg4", "dinov2_tiny_reg4")
AGGREGATES = ("max", "mean")


@dataclass(frozen=True)
class DinomalyParams(Params):
    """Dinomaly (METHODS §5.2): a frozen DINOv2-reg encoder's middle blocks reconstructed by a
    noisy MLP bottleneck and linear-attention decoder blocks; map = mean over the loose groups
    of ``1 - cos(encoder, decoder)``.

    Reads the images itself at its own geometry (``image_size`` resize, ``crop_size`` centre
    crop; 448 -> 392 published). ``multi_class`` true (published): one model per dataset on the
    TRAIN images of all its categories; false: one per category. Trained for ``iterations``
    (10 000 published) with StableAdamW (torch-optimi, which has no AMSGrad: the paper's
    ``amsgrad=True`` is not reproduced), warm-up + cosine, grad-clip, the
    ``global_cosine_hm_percent`` loss; ``select: auto`` keeps the weights with the best val
    image AUROC when the dataset has a val split, else the last ones (never test).
    """

    implementation: ClassVar[str] = "iadbench.methods.dinomaly.method:DinomalyMethod"
    kind_name: ClassVar[str] = "dinomaly"
    entry_keys: ClassVar[dict[str, str]] = {
        "kind": "",
        "datasets": "",
        "seed": "decoder initialisation, sampling order and dropout (published: 1)",
        "grid": "",
    }

    encoder: str = param(
        "dinov2_vitb14_reg4",
        "frozen DINOv2-reg encoder (backbone registry name; tiny: tests/demo)",
        enum=list(ENCODERS),
    )
    weights: str = param(
        "pretrained",
        "encoder weights: pretrained (local timm/HF cache), random, a published tag, or a file",
        minLength=1,
    )
    taps: list | None = param(
        None,
        "encoder blocks reconstructed (0-based); null = 2..9 of 12 blocks, 4,6,..,18 of 24",
        schema={
            "oneOf": [
                {"type": "null"},
                {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2},
            ]
        },
    )
    groups: list = param(
        [[0, 1, 2, 3], [4, 5, 6, 7]],
        "loose groups: indices into taps (encoder) and into the reversed decoder outputs",
        minItems=1,
        items={"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
    )
    decoder_depth: int = param(8, "linear-attention decoder blocks", minimum=2)
    dropout: float = param(
        0.2, "bottleneck dropout (input, after GELU, output)", minimum=0, exclusiveMaximum=1
    )
    mlp_bias: bool = param(
        True, "biases in the bottleneck and decoder MLPs (paper's code; anomalib 2.7.0: false)"
    )
    image_size: int = param(448, "square resize before the crop (bilinear)", minimum=14)
    crop_size: int = param(
        392, "centre crop fed to the encoder (a multiple of the patch)", minimum=14
    )
    multi_class: bool = param(
        True, "one model per dataset on all its categories (published); false: per category"
    )
    iterations: int = param(10000, "optimiser steps (published 10 000)", minimum=1)
    batch_size: int = param(
        16, "images per step (last incomplete batch of a pass dropped)", minimum=1
    )
    lr: float = param(0.002, "StableAdamW peak learning rate", exclusiveMinimum=0)
    final_lr: float = param(0.0002, "learning rate the cosine ends at", minimum=0)
    warmup_iters: int = param(100, "linear warm-up from 0 (iterations)", minimum=0)
    weight_decay: float = param(0.0001, "StableAdamW decoupled weight decay", minimum=0)
    betas: list = param(
        [0.9, 0.999],
        "StableAdamW moment decays",
        minItems=2,
        maxItems=2,
        items={"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    )
    eps: float = param(1e-10, "StableAdamW epsilon", exclusiveMinimum=0)
    grad_clip: float = param(0.1, "maximum global gradient norm", exclusiveMinimum=0)
    p_final: float = param(
        0.9, "share of easy points whose gradient is damped, after the ramp", minimum=0, maximum=1
    )
    p_ramp: int = param(1000, "iterations over which p rises linearly from 0 to p_final", minimum=0)
    factor: float = param(0.1, "gradient factor of the easy points", minimum=0, maximum=1)
    eval_size: int = param(256, "map size the smoothing and the image score work at", minimum=8)
    smooth_kernel: int = param(5, "Gaussian kernel size (odd)", minimum=1)
    smooth_sigma: float = param(4.0, "Gaussian sigma (pixels at eval_size)", exclusiveMinimum=0)
    smooth_padding: str = param(
        "zeros",
        "border of the Gaussian: zeros (the paper's code's Conv2d) or reflect (anomalib 2.7.0)",
        enum=["zeros", "reflect"],
    )
    max_ratio: float = param(
        0.01, "image score: mean of this top fraction of the map (0: max)", minimum=0, maximum=1
    )
    select: str = param(
        "auto",
        "weights kept: val = best val image AUROC (needs a val split), last, auto = val if any",
        enum=["auto", "val", "last"],
    )
    eval_every: int = param(
        1000, "iterations between val checks and resume checkpoints (and at the end)", minimum=1
    )

    def needs(self) -> Needs:
        return Needs(
            inputs=frozenset({"images"}),
            training="per_dataset" if self.multi_class else "per_category",
            maps=True,
        )

    def splits_read(self) -> frozenset[str]:
        return frozenset({"val"}) if self.select == "val" else frozenset()

    def check(self) -> None:
        if self.crop_size > self.image_size:
            raise ConfigError(
                f"dinomaly: crop_size {self.crop_size} exceeds image_size {self.image_size}"
            )
        if self.crop_size % 14:
            raise ConfigError(f"dinomaly: crop_size {self.crop_size} is not a multiple of 14")
        if self.warmup_iters >= self.iterations:
            raise ConfigError(
                f"dinomaly: warmup_iters {self.warmup_iters} must be below iterations "
                f"{self.iterations} (the cosine follows the warm-up)"
            )
        if self.smooth_kernel % 2 == 0:
            raise ConfigError(f"dinomaly: smooth_kernel {self.smooth_kernel} must be odd")
        if self.taps is not None and len(set(self.taps)) != len(self.taps):
            raise ConfigError(f"dinomaly: taps {self.taps} repeat a block")
        n_taps = len(self.taps) if self.taps is not None else 8
        for group in self.groups:
            if max(group) >= min(n_taps, self.decoder_depth):
                raise ConfigError(
                    f"dinomaly: group {group} indexes beyond {n_taps} taps / "
                    f"{self.decoder_depth} decoder blocks"
                )

    def describe(self, state: dict) -> dict[str, Any]:
        return {
            "encoder": self.encoder,
            "taps": "-".join(str(t) for t in state.get("taps", [])),
            "iterations": int(self.iterations),
            "multi_class": bool(self.multi_class),
            "selection": state.get("selection"),
        }


@dataclass(frozen=True)
class ViewDinomalyParams(DinomalyParams):
    """Dinomaly on the post-weld photos (METHODS §6.3, image-only weld baseline): trained on
    every photo of every TRAIN good run (the ``label_mask`` box blanked with the photo's mean
    colour), one model per dataset; a view scores Dinomaly's image score and a run the
    ``aggregate`` (max or mean) over its views; ``select: auto`` picks on VAL runs' AUROC. No
    maps: the weld data has no masks.
    """

    implementation: ClassVar[str] = "iadbench.methods.dinomaly.method:ViewDinomaly"
    kind_name: ClassVar[str] = "view_dinomaly"
    run_photos: ClassVar[bool] = True
    entry_keys: ClassVar[dict[str, str]] = {
        **DinomalyParams.entry_keys,
        "datasets": "multimodal datasets (layout weld)",
    }

    aggregate: str = param("max", "run score from its views' image scores", enum=list(AGGREGATES))

    def needs(self) -> Needs:
        return Needs(
            inputs=frozenset({"images"}),
            training="per_dataset" if self.multi_class else "per_category",
            maps=False,
        )

    def describe(self, state: dict) -> dict[str, Any]:
        return {**super().describe(state), "aggregate": self.aggregate}
