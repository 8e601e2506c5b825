"""Build a registered backbone: library model, its weights, its preprocessing, its taps.

Mean/std and the native input size come from the library's own config for the weights' tag
(timm ``resolve_data_config``, open_clip ``visual.preprocess_cfg``), never from constants here.
CNNs take the evaluation image as it is; ViT and CLIP models have fixed position embeddings, so
:meth:`LoadedBackbone.taps` resizes the batch (bilinear) to their native size when it differs.
"""

from __future__ import annotations

import copy
import functools
import logging
import types
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from iadbench.backbones.registry import OPEN_CLIP_CONFIGS, BackboneSpec, resolve_layers, spec_for
from iadbench.backbones.weights import (
    ResolvedWeights,
    fit_state_dict,
    read_state_dict,
    resolve_weights,
)
from iadbench.errors import ConfigError
from iadbench.seeding import seeded


@dataclass(frozen=True)
class Preprocessing:
    """What a model expects: normalisation and, for fixed-size models, the input size."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int] | None  # None: any size (CNNs)


@dataclass
class LoadedBackbone:
    """A ready model plus what feature extraction needs to feed it and to label its output."""

    name: str
    family: str
    model: torch.nn.Module
    layers: tuple[int, ...]
    preprocessing: Preprocessing
    weights: ResolvedWeights
    # ViT taps after the model's final norm (DINOv2's ``get_intermediate_layers``, AnomalyDINO's
    # tokens) instead of the raw block outputs.
    norm: bool = False

    @property
    def patch(self) -> int | None:
        """A ViT's patch side in px (None for other families): sizes it takes are multiples."""
        embed = getattr(self.model, "patch_embed", None)
        return int(embed.patch_size[0]) if self.family == "vit" and embed is not None else None

    @torch.no_grad()
    def taps(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """(B, C_i, h_i, w_i) per tap, in tap order, for a normalised (B, 3, H, W) batch."""
        size = self.preprocessing.input_size
        if size is not None and tuple(batch.shape[-2:]) != size:
            batch = F.interpolate(
                batch, size=size, mode="bilinear", align_corners=False, antialias=True
            )
        extra = {"norm": True} if self.norm else {}
        out = self.model.forward_intermediates(
            batch, indices=list(self.layers), stop_early=True, intermediates_only=True, **extra
        )
        return out["image_intermediates"] if self.family == "clip" else out


class _DropMessage(logging.Filter):
    """Hide one misleading library log line (weights are loaded after construction)."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def _build_timm(
    spec: BackboneSpec, tag: str, dynamic: bool = False
) -> tuple[torch.nn.Module, Preprocessing]:
    """``dynamic``: a ViT that takes any multiple of its patch, its position grid resampled
    (bicubic) at each forward, as timm's ``dynamic_img_size`` (and anomalib's AnomalyDINO)."""
    import timm  # heavy (imports torchvision); only feature extraction needs it

    kwargs: dict = dict(spec.model_kwargs)
    if dynamic:
        kwargs["dynamic_img_size"] = True
    if spec.img_size is not None:
        size = spec.img_size
        kwargs |= {"img_size": size, "pretrained_cfg_overlay": {"input_size": (3, size, size)}}
    name = f"{spec.library_name}.{tag}" if tag else spec.library_name
    model = timm.create_model(name, pretrained=False, **kwargs)
    data = timm.data.resolve_data_config({}, model=model)
    input_size = tuple(data["input_size"][1:]) if spec.family == "vit" and not dynamic else None
    return model, Preprocessing(tuple(data["mean"]), tuple(data["std"]), input_size)


# How a ViT run at the batch's own size resamples its position grid (backbone ``interpolation``):
# (F.interpolate mode, antialias). ``bicubic`` is the DINOv2 hub's and anomalib's (no
# antialiasing); ``bicubic_antialias`` is timm's ``dynamic_img_size`` default.
POS_EMBED_RESAMPLING = {
    "bicubic": ("bicubic", False),
    "bicubic_antialias": ("bicubic", True),
    "bilinear": ("bilinear", False),
}


def pos_embed_resampled(
    vit: torch.nn.Module, x: torch.Tensor, mode: str, antialias: bool
) -> torch.Tensor:
    """timm ``VisionTransformer._pos_embed`` for a (B, h, w, C) patch grid, with the position
    grid resampled by ``mode``/``antialias`` (timm's own hard-wires antialias=True)."""
    from timm.layers import resample_abs_pos_embed

    b, h, w, c = x.shape
    pos = resample_abs_pos_embed(
        vit.pos_embed,
        new_size=(h, w),
        old_size=vit.patch_embed.grid_size,
        num_prefix_tokens=0 if vit.no_embed_class else vit.num_prefix_tokens,
        interpolation=mode,
        antialias=antialias,
    )
    prefix = [t.expand(b, -1, -1) for t in (vit.cls_token, vit.reg_token) if t is not None]
    x = x.reshape(b, h * w, c)
    if vit.no_embed_class:  # position embeddings of the patches only (DINOv2-reg, DeiT-3)
        x = torch.cat([*prefix, x + pos], dim=1)
    else:
        x = torch.cat([*prefix, x], dim=1) + pos
    return vit.pos_drop(x)


def set_pos_embed_resampling(vit: torch.nn.Module, interpolation: str) -> None:
    """Make a ``dynamic_img_size`` timm ViT resample its position grid as ``interpolation``
    (a :data:`POS_EMBED_RESAMPLING` key) at each forward, on this instance only."""
    if interpolation not in POS_EMBED_RESAMPLING:
        raise ConfigError(
            f"interpolation {interpolation!r} is not one of {sorted(POS_EMBED_RESAMPLING)}"
        )
    mode, antialias = POS_EMBED_RESAMPLING[interpolation]
    vit._pos_embed = types.MethodType(
        functools.partial(pos_embed_resampled, mode=mode, antialias=antialias), vit
    )


def register_open_clip_configs() -> None:
    """Make open_clip know the architectures it does not ship (``OPEN_CLIP_CONFIGS``).

    open_clip's public ``add_model_config`` only reads JSON files, and the package ships no data
    files, so the configs are written into open_clip's name -> config table directly; every
    open_clip lookup (``create_model``, ``get_model_config``) reads that table.
    """
    from open_clip import factory

    for name, cfg in OPEN_CLIP_CONFIGS.items():
        factory._MODEL_CONFIGS.setdefault(name, copy.deepcopy(cfg))


def _create_open_clip(spec: BackboneSpec, tag: str) -> tuple[torch.nn.Module, Preprocessing]:
    """Image and text towers, with the tag's activation (OpenAI's QuickGELU) and mean/std."""
    import open_clip

    register_open_clip_configs()
    cfg = open_clip.get_pretrained_cfg(spec.library_name, tag) if tag else {}
    quiet = _DropMessage("No pretrained weights loaded")
    logging.getLogger().addFilter(quiet)
    try:
        model = open_clip.create_model(
            spec.library_name,
            pretrained=None,
            force_quick_gelu=bool(cfg.get("quick_gelu", False)),
            force_preprocess_cfg={k: cfg[k] for k in ("mean", "std") if k in cfg},
        )
    finally:
        logging.getLogger().removeFilter(quiet)
    pp = model.visual.preprocess_cfg
    size = pp["size"] if isinstance(pp["size"], (tuple, list)) else (pp["size"], pp["size"])
    return model, Preprocessing(tuple(pp["mean"]), tuple(pp["std"]), tuple(size))


def _build_clip(spec: BackboneSpec, tag: str) -> tuple[torch.nn.Module, Preprocessing]:
    """The image tower only (feature extraction)."""
    model, preprocessing = _create_open_clip(spec, tag)
    return model.visual, preprocessing


# Integers stored beside the tensors in OpenAI's TorchScript archives; no module has them.
_OPENAI_METADATA = ("input_resolution", "context_length", "vocab_size")


def _derived_buffers(model: torch.nn.Module) -> set[str]:
    """Buffers a module rebuilds itself (text attention mask); TorchScript archives save them."""
    return {name for name, _ in model.named_buffers()} - set(model.state_dict())


def _prepare_state(spec: BackboneSpec, state: dict, model: torch.nn.Module) -> dict:
    """Bring a checkpoint into the built module's layout (the library's own conversions)."""
    if spec.family == "clip":
        dropped = set(_OPENAI_METADATA) | _derived_buffers(model)
        state = {k: v for k, v in state.items() if k not in dropped}
        if hasattr(model, "visual") or not any(k.startswith("visual.") for k in state):
            return state
        return {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
    if spec.family == "vit":
        from timm.models.vision_transformer import checkpoint_filter_fn

        return checkpoint_filter_fn(state, model)  # e.g. DINOv2's 37x37 position grid -> 16x16
    return state


def _load_weights(
    spec: BackboneSpec, weights: ResolvedWeights, seed: int, build
) -> tuple[torch.nn.Module, Preprocessing]:
    """``build(spec, tag)`` under a seeded RNG (the caller's is untouched), then the weights."""
    model, preprocessing = seeded(seed, build, spec, weights.tag)
    if weights.path is not None:
        state = _prepare_state(spec, read_state_dict(weights.path), model)
        fit_state_dict(model, state, weights.path)
    return model.eval(), preprocessing


def build_clip_model(
    spec: BackboneSpec, weights: ResolvedWeights, seed: int = 0
) -> tuple[torch.nn.Module, Preprocessing]:
    """A whole open_clip model (image and text towers) in eval mode, with ``weights`` loaded.

    A checkpoint must hold both towers: an open_clip state dict, or OpenAI's TorchScript archive
    (read as a state dict and loaded into the registry's architecture, never run as TorchScript).
    """
    if spec.family != "clip":
        raise ConfigError(f"{spec.library_name} is a {spec.family} model, not an open_clip one")
    return _load_weights(spec, weights, seed, _create_open_clip)


def build_model(
    spec: BackboneSpec, weights: ResolvedWeights, seed: int = 0, dynamic: bool = False
) -> tuple[torch.nn.Module, Preprocessing]:
    """The full library model (CLIP: image tower) in eval mode, with ``weights`` loaded.

    Random initialisation is seeded without disturbing the caller's global RNG. ``dynamic``
    (ViTs only): any input size, see :func:`_build_timm`.
    """
    if dynamic and spec.family != "vit":
        raise ConfigError(f"{spec.library_name}: only ViT backbones take any input size")
    if spec.family == "clip":
        return _load_weights(spec, weights, seed, _build_clip)
    return _load_weights(spec, weights, seed, functools.partial(_build_timm, dynamic=dynamic))


def load_backbone(
    name: str,
    weights: str = "pretrained",
    layers: list[int] | tuple[int, ...] | str | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    norm: bool = False,
    dynamic: bool = False,
    interpolation: str = "bicubic",
) -> LoadedBackbone:
    """Build a registered backbone, cut after its deepest tap, ready for ``taps``.

    ``norm``: ViT taps after the final norm; ``dynamic``: a ViT run at the batch's own size, its
    position grid resampled as ``interpolation`` says (:data:`POS_EMBED_RESAMPLING`).
    """
    spec = spec_for(name)
    if norm and spec.family != "vit":
        raise ConfigError(f"backbone {name!r}: token_norm is for ViT backbones only")
    taps = resolve_layers(name, layers)
    resolved = resolve_weights(weights, spec)
    model, preprocessing = build_model(spec, resolved, seed, dynamic)
    model.prune_intermediate_layers(indices=list(taps), prune_head=True)
    if dynamic:
        set_pos_embed_resampling(model, interpolation)
    return LoadedBackbone(
        name=name,
        family=spec.family,
        model=model.to(device),
        layers=taps,
        preprocessing=preprocessing,
        weights=resolved,
        norm=norm,
    )
