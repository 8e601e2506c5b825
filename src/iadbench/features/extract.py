"""Run a backbone over one (category, split) of a manifest and fill the feature store."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from iadbench.backbones.loader import POS_EMBED_RESAMPLING, Preprocessing, load_backbone
from iadbench.backbones.registry import resolve_layers, spec_for
from iadbench.backbones.weights import resolve_weights
from iadbench.data.images import Geometry, load_image
from iadbench.device import resolve_device
from iadbench.errors import CacheError, ConfigError
from iadbench.features.patches import PADDINGS, UPSAMPLES, layer_shares, locally_aware_patches
from iadbench.features.store import config_hash, write_features
from iadbench.progress import Progress

log = logging.getLogger(__name__)

# 2: ViT/CLIP families, resolved tap indices, per-tap ``dim`` reduction, ``layer_dims`` in meta.
# 3: ``padding`` (border handling of the patch aggregation) and ``normalize`` in the identity.
# 4: ``upsample`` (bilinear | nearest resizing of deeper taps) in the identity.
# 5: ``token_norm`` (ViT taps after the final norm) and ``smaller_edge`` (aspect-keeping resize,
#    no crop: the grid follows each image's shape) in the identity.
FORMAT_VERSION = 5

# ``normalize: imagenet`` — the statistics many pipelines apply whatever the weights were trained
# with; ``model`` (the default) takes the weights' own from the library's config.
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
NORMALIZE = ("model", "imagenet")


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that determines the bytes of a feature file (hence its cache key).

    ``layers`` may be given as in config (None for the registry default, negative indices,
    ``"lastN"``); it is stored resolved, so equivalent spellings share one cache entry.
    """

    model: str
    weights: str = "pretrained"
    layers: tuple[int, ...] | list[int] | str | None = None
    patch_size: int = 3
    dim: int | None = None
    seed: int = 0
    geometry: Geometry = field(default_factory=Geometry)
    padding: str = "zeros"
    normalize: str = "model"
    upsample: str = "bilinear"
    token_norm: bool = False
    smaller_edge: int | None = None
    # with smaller_edge: how the ViT's position grid is resampled to each image's grid
    # (None = bicubic without antialiasing, the DINOv2 hub's and anomalib's); unused otherwise
    interpolation: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", resolve_layers(self.model, self.layers))
        family = spec_for(self.model).family
        for key, on in (("token_norm", self.token_norm), ("smaller_edge", self.smaller_edge)):
            if on and family != "vit":
                raise ConfigError(
                    f"backbone {self.model!r}: {key} is for ViT backbones (this one is {family})"
                )
        if self.smaller_edge is not None and self.smaller_edge < 1:
            raise ConfigError(f"backbone {self.model!r}: smaller_edge must be >= 1")
        if self.smaller_edge is not None and self.pos_embed not in POS_EMBED_RESAMPLING:
            raise ConfigError(
                f"backbone {self.model!r}: interpolation {self.interpolation!r} with smaller_edge "
                f"is not one of {sorted(POS_EMBED_RESAMPLING)}"
            )
        if self.padding not in PADDINGS:
            raise ConfigError(
                f"backbone {self.model!r}: padding {self.padding!r} is not one of {PADDINGS}"
            )
        if self.upsample not in UPSAMPLES:
            raise ConfigError(
                f"backbone {self.model!r}: upsample {self.upsample!r} is not one of {UPSAMPLES}"
            )
        if self.normalize not in NORMALIZE:
            raise ConfigError(
                f"backbone {self.model!r}: normalize {self.normalize!r} is not one of {NORMALIZE}"
            )
        if self.dim is not None and self.dim < len(self.layers):
            raise ConfigError(
                f"backbone {self.model!r}: dim {self.dim} is smaller than the number of taps "
                f"{list(self.layers)}; each tap keeps at least one channel"
            )

    @classmethod
    def from_config(cls, backbone: dict, geometry: dict) -> FeatureConfig:
        """Build from a ``backbones:`` entry and a dataset's ``resize``/``crop``."""
        return cls(
            model=backbone["model"],
            weights=str(backbone.get("weights", "pretrained")),
            layers=backbone.get("layers"),
            patch_size=int(backbone.get("patch_size", 3)),
            dim=backbone.get("dim"),
            seed=int(backbone.get("seed", 0)),
            geometry=Geometry.from_config(geometry),
            padding=str(backbone.get("padding", "zeros")),
            normalize=str(backbone.get("normalize", "model")),
            upsample=str(backbone.get("upsample", "bilinear")),
            token_norm=bool(backbone.get("token_norm", False)),
            smaller_edge=backbone.get("smaller_edge"),
            interpolation=backbone.get("interpolation"),
        )

    @property
    def pos_embed(self) -> str:
        """The position-grid resampling of a ``smaller_edge`` ViT (``interpolation`` or bicubic)."""
        return self.interpolation or "bicubic"

    def identity(self) -> dict:
        """JSON-able description including the resolved weights' content digest."""
        spec = spec_for(self.model)
        weights = resolve_weights(self.weights, spec)
        # only where it acts, so other caches keep their keys (FORMAT_VERSION unchanged)
        resampling = {"pos_embed": self.pos_embed} if self.smaller_edge is not None else {}
        return {
            "format": FORMAT_VERSION,
            "model": self.model,
            "family": spec.family,
            "library": spec.library,
            "library_name": spec.library_name,
            "weights": weights.identity,
            "layers": list(self.layers),
            "patch_size": self.patch_size,
            "padding": self.padding,
            "upsample": self.upsample,
            "normalize": self.normalize,
            "dim": self.dim,
            "seed": self.seed if weights.kind == "random" else None,
            "resize": self.geometry.resize,
            "crop": self.geometry.crop,
            "token_norm": self.token_norm,
            "smaller_edge": self.smaller_edge,
        } | resampling

    def hash(self) -> str:
        return config_hash(self.identity())

    def load_backbone(self, device: torch.device):
        """The backbone this config runs (any input size when ``smaller_edge`` is set)."""
        return load_backbone(
            self.model,
            self.weights,
            self.layers,
            seed=self.seed,
            device=device,
            norm=self.token_norm,
            dynamic=self.smaller_edge is not None,
            interpolation=self.pos_embed,
        )

    def image(self, rgb: np.ndarray, patch: int | None) -> np.ndarray:
        """A decoded uint8 image as the backbone sees it: the dataset's square resize and centre
        crop, or (``smaller_edge``) AnomalyDINO's geometry: the smaller edge resized to
        ``smaller_edge`` (bicubic, PIL's antialiasing, aspect ratio kept, as torchvision's
        ``Resize(int)`` on a PIL image), no crop but the bottom/right remainder beyond a multiple
        of the ViT's ``patch``."""
        if self.smaller_edge is None:
            return self.geometry.image(rgb)
        return smaller_edge_image(rgb, self.smaller_edge, patch)

    def preprocessing(self, native: Preprocessing) -> Preprocessing:
        """The model's own preprocessing, with ImageNet statistics when ``normalize`` says so."""
        if self.normalize == "imagenet":
            return replace(native, mean=IMAGENET_STATS[0], std=IMAGENET_STATS[1])
        return native


def smaller_edge_image(rgb: np.ndarray, edge: int, patch: int | None) -> np.ndarray:
    """uint8 (H, W, 3) -> the smaller edge at ``edge`` px (bicubic), then cut to multiples of
    ``patch`` at the top-left corner (AnomalyDINO's ``prepare_image``)."""
    from PIL import Image

    height, width = rgb.shape[:2]
    if height <= width:  # torchvision's _compute_resized_output_size: int() of the long side
        size = (int(edge * width / height), edge)
    else:
        size = (edge, int(edge * height / width))
    out = np.asarray(Image.fromarray(rgb).resize(size, Image.BICUBIC))
    if patch:
        out = out[: out.shape[0] - out.shape[0] % patch, : out.shape[1] - out.shape[1] % patch]
    return out


def normalise_images(
    images: list[np.ndarray], preprocessing: Preprocessing, device: torch.device | None = None
) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> standardised float (N, 3, H, W) on ``device``.

    On CUDA the uint8 batch (a quarter of the float bytes) goes through pinned memory with a
    non-blocking copy and is converted on the GPU.
    """
    batch = torch.from_numpy(np.stack(images))
    if device is not None and device.type == "cuda":
        batch = batch.pin_memory().to(device, non_blocking=True)
    elif device is not None:
        batch = batch.to(device)
    batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(preprocessing.mean, device=batch.device).view(1, 3, 1, 1)
    std_t = torch.tensor(preprocessing.std, device=batch.device).view(1, 3, 1, 1)
    return (batch - mean_t) / std_t


def patch_features(
    backbone, images: list[np.ndarray], cfg: FeatureConfig, device: torch.device
) -> tuple[np.ndarray, list[int]]:
    """Decoded, geometry-applied uint8 images -> fp16 (N, h, w, C) features and tap widths.

    The one path from pixels to cached features, shared by extraction and latency timing. On
    CUDA the backbone runs under autocast (the store keeps fp16 anyway); the patch aggregation
    and every CPU run stay in float32.
    """
    batch = normalise_images(images, cfg.preprocessing(backbone.preprocessing), device)
    if device.type == "cuda":
        with torch.autocast(device_type="cuda"):
            taps = [t.float() for t in backbone.taps(batch)]
    else:
        taps = backbone.taps(batch)
    layer_dims = layer_shares([t.shape[1] for t in taps], cfg.dim)
    feats = locally_aware_patches(taps, cfg.patch_size, cfg.dim, cfg.padding, cfg.upsample)
    return feats.cpu().numpy().astype(np.float16), layer_dims


def check_same_shape(images: list[np.ndarray], paths: list[str], first: tuple) -> None:
    """One store holds one grid: refuse images that ``smaller_edge`` brings to another size than
    the split's ``first`` image."""
    for path, image in zip(paths, images):
        if image.shape != first:
            raise CacheError(
                f"{path}: {image.shape[1]}x{image.shape[0]} px after smaller_edge, but the first "
                f"image of this (category, split) gives {first[1]}x{first[0]}: smaller_edge keeps "
                "each image's aspect ratio, and one feature store holds one grid"
            )


def extract_features(
    manifest: pd.DataFrame,
    category: str,
    split: str,
    cfg: FeatureConfig,
    npy_path: str | Path,
    index_path: str | Path,
    device: str = "auto",
    batch_size: int = 16,
) -> dict:
    """Extract patch features for every image of (category, split); return the metadata."""
    rows = manifest[(manifest["category"] == category) & (manifest["split"] == split)]
    rows = rows.reset_index(drop=True)
    if rows.empty:
        raise CacheError(f"no {split} images for category {category!r} in the manifest")
    dev = resolve_device(device)
    backbone = cfg.load_backbone(dev)
    identity = cfg.identity()
    geometry = cfg.geometry

    def load(path: str) -> np.ndarray:
        return cfg.image(load_image(path), backbone.patch)

    chunks: list[np.ndarray] = []
    layer_dims: list[int] = []
    first: tuple | None = None
    paths = rows["image_path"].tolist()
    with (
        ThreadPoolExecutor(max_workers=2) as pool,
        Progress(
            total=len(paths),
            desc=f"features {cfg.model} {category}/{split}",
            unit="img",
            disable=None,
        ) as bar,
    ):
        for start in range(0, len(paths), batch_size):
            images = list(pool.map(load, paths[start : start + batch_size]))
            first = first or images[0].shape
            check_same_shape(images, paths[start : start + batch_size], first)
            feats, layer_dims = patch_features(backbone, images, cfg, dev)
            chunks.append(feats)
            bar.update(len(images))
    features = np.concatenate(chunks)
    if not np.isfinite(features).all():
        raise CacheError(f"backbone {cfg.model} produced NaN/Inf features for {category}/{split}")
    meta = {
        **identity,
        "config_hash": config_hash(identity),
        "category": category,
        "split": split,
        "grid": list(features.shape[1:3]),
        "channels": int(features.shape[3]),
        "layer_dims": layer_dims,
        "model_input": list(
            backbone.preprocessing.input_size
            or (first[:2] if cfg.smaller_edge else (geometry.crop, geometry.crop))
        ),
        "device": dev.type,
    }
    index = rows[
        ["sample_id", "category", "split", "label", "defect_type", "image_path", "mask_path"]
    ]
    write_features(Path(npy_path), Path(index_path), index, meta, features)
    log.info("%s/%s: %s features -> %s", category, split, features.shape, npy_path)
    return meta
