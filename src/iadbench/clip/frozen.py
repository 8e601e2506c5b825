"""The frozen residual stream of one (category, split), cached once for every epoch and seed.

A trained CLIP head without augmentation sees the same frozen tokens every time it meets an
image: the residual stream after the blocks nothing trains (APRIL-GAN: its taps; FE-CLIP: the
block before its first adapter) and the image embedding. One job computes them; every train job
that shares (dataset, backbone, geometry, blocks) reads them instead of rerunning CLIP.

The stream goes to an fp16 ``.npy`` that readers memory-map: MVTec AD's test split through
ViT-L at 336 px at four taps is ~16 GB in fp32, which must never be held in RAM. fp16 because
that is the precision the blocks run at under the AMP training does on a GPU, at half the
bytes. A ``.npz`` beside it (:mod:`iadbench.clip.cache`'s format) holds the image embeddings,
the sample order and the identity; a stream made with anything else is refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iadbench.clip.cache import load_arrays, save_arrays, visual_identity
from iadbench.clip.encoder import ClipEncoder
from iadbench.errors import CacheError
from iadbench.io import atomic_path

DTYPE = np.float16


def frozen_identity(backbone_cfg: Mapping[str, Any], geometry: Mapping[str, Any], view: str):
    """What a cached stream depends on: encoder, geometry, blocks (``view``) and storage dtype."""
    return {**visual_identity(backbone_cfg, geometry, f"frozen-{view}"), "dtype": DTYPE.__name__}


@dataclass(frozen=True)
class FrozenFile:
    """A cached stream: ``tokens`` (N, T, 1 + h*w, width) fp16, memory-mapped; ``cls`` (N, D)."""

    tokens: np.ndarray
    cls: np.ndarray
    sample_ids: tuple[str, ...]
    blocks: tuple[int, ...]

    def rows(self, sample_ids: Sequence[str], where: str) -> list[int]:
        """Each sample's row in the file; a sample it lacks is refused."""
        position = {s: i for i, s in enumerate(self.sample_ids)}
        if missing := [s for s in sample_ids if s not in position]:
            raise CacheError(f"{where}: no frozen stream for {len(missing)} samples ({missing[0]})")
        return [position[s] for s in sample_ids]


def write_frozen(
    encoder: ClipEncoder,
    batches: Iterator[torch.Tensor],
    blocks: Sequence[int],
    sample_ids: Sequence[str],
    tokens_out: str | Path,
    meta_out: str | Path,
    meta: dict,
) -> None:
    """Run the frozen pass batch by batch, straight into the memory-mapped ``tokens_out``."""
    n, start, cls = len(sample_ids), 0, []
    with atomic_path(tokens_out) as tmp:
        array = None
        for batch in batches:
            out = encoder.frozen_stream(batch, blocks)
            half = out.tokens.float().cpu().numpy().astype(DTYPE)
            if not np.isfinite(half).all():
                raise CacheError(f"{tokens_out}: the frozen stream overflows {DTYPE.__name__}")
            if array is None:
                array = np.lib.format.open_memmap(tmp, "w+", DTYPE, (n, *half.shape[1:]))
            array[start : start + len(half)] = half
            start += len(half)
            cls.append(out.cls.float().cpu())
        if array is None or start != n:
            raise CacheError(f"{tokens_out}: {start} images encoded for {n} samples")
        array.flush()
        shape = list(array.shape)
        del array
    arrays = {"sample_id": np.asarray(sample_ids, str), "cls": torch.cat(cls).numpy()}
    save_arrays(meta_out, arrays, {**meta, "blocks": list(blocks), "shape": shape})


def open_frozen(tokens_path: str | Path, meta_path: str | Path, expect: dict) -> FrozenFile:
    """A cached stream made with identity ``expect``, its tokens memory-mapped read-only."""
    arrays, meta = load_arrays(meta_path, expect)
    try:
        tokens = np.load(tokens_path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise CacheError(f"{tokens_path}: unreadable frozen stream ({exc})") from exc
    if tokens.dtype != DTYPE or list(tokens.shape) != meta.get("shape"):
        raise CacheError(
            f"{tokens_path}: {tokens.dtype} {list(tokens.shape)}, but {meta_path} describes "
            f"{DTYPE.__name__} {meta.get('shape')}; delete both to recompute"
        )
    ids = tuple(str(s) for s in arrays["sample_id"])
    return FrozenFile(tokens, arrays["cls"], ids, tuple(meta["blocks"]))
