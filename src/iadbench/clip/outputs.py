"""From images to CLIP outputs: one path shared by the cached views and few-shot references.

Images go through the dataset's geometry (resize, centre crop), the encoder's own mean/std and,
inside the encoder, a resize to its input size — exactly as for every other backbone. The same
functions encode the cached test views and WinCLIP+'s reference images, so the two can never
drift apart.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from iadbench.clip.encoder import ClipEncoder, load_clip
from iadbench.data.images import Geometry, load_image
from iadbench.device import resolve_device
from iadbench.features.extract import normalise_images
from iadbench.progress import Progress


def load_encoder(backbone_cfg: Mapping[str, Any], device: str = "auto") -> ClipEncoder:
    """The CLIP of a ``backbones:`` entry (model, weights, seed, input_size, interpolation,
    resample)."""
    return load_clip(
        backbone_cfg["model"],
        str(backbone_cfg.get("weights", "pretrained")),
        input_size=backbone_cfg.get("input_size"),
        seed=int(backbone_cfg.get("seed", 0)),
        device=resolve_device(device),
        interpolation=backbone_cfg.get("interpolation", "bilinear"),
        resample=backbone_cfg.get("resample", "bilinear"),
    )


def parse_view(view: str) -> tuple[str, tuple[int, ...]]:
    """``"ln_post-b3-b11"`` -> (``"ln_post"``, (3, 11)); ``"cls"``: the CLS embedding alone."""
    if view == "cls":
        return "projected", ()
    token_path, *blocks = view.split("-")
    return token_path, tuple(int(b.removeprefix("b")) for b in blocks)


def image_batches(
    paths: Sequence[str],
    geometry: Mapping[str, Any],
    encoder: ClipEncoder,
    batch_size: int,
    desc: str,
    resample: str | None = None,
) -> Iterator[torch.Tensor]:
    """Normalised (B, 3, crop, crop) batches of ``paths``, decoded two at a time; ``resample``:
    the geometry's PIL filter (APRIL-GAN scores bicubic, as VAND's test preprocess); None = the
    encoder's (backbone ``resample``, bilinear by default)."""
    geo = Geometry.from_config(geometry)
    resample = resample or encoder.resample

    def load(path: str) -> np.ndarray:
        return geo.image(load_image(path), resample)

    with (
        ThreadPoolExecutor(max_workers=2) as pool,
        Progress(total=len(paths), desc=desc, unit="img", disable=None) as bar,
    ):
        for start in range(0, len(paths), batch_size):
            images = list(pool.map(load, paths[start : start + batch_size]))
            yield normalise_images(images, encoder.preprocessing)
            bar.update(len(images))


def encode_visual(
    encoder: ClipEncoder,
    batches: Iterator[torch.Tensor],
    token_path: str,
    blocks: Sequence[int],
) -> dict[str, np.ndarray]:
    """``cls`` (N, D) and, with blocks, ``tokens`` (N, T, h, w, D), float32."""
    cls, tokens = [], []
    for batch in batches:
        out = encoder.encode_image(batch, list(blocks), token_path)
        cls.append(out.cls.float().cpu())
        if out.patches:
            tokens.append(torch.stack(out.patches, dim=1).float().cpu())
    arrays = {"cls": torch.cat(cls).numpy()}
    if tokens:
        arrays["tokens"] = torch.cat(tokens).numpy()
    return arrays
