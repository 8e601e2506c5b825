"""WinCLIP (zero-shot) and WinCLIP+ (few-shot) scoring, METHODS §2.1, as pure tensor functions.

Embeddings in, scores and maps out: :class:`iadbench.clip.encoder.ClipEncoder` yields the CLS,
window and patch embeddings, and a method only wires them together. Where METHODS leaves a
choice open, it is an argument whose default is METHODS' (anomalib's) choice; the docstrings
say which. Defaults shared with the parameters (temperature, window sizes) are the parameters'.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from iadbench.clip.scoring import anomaly_probability
from iadbench.methods.winclip.params import TEMPERATURE, WINDOWS

if TYPE_CHECKING:
    from iadbench.clip.encoder import ClipEncoder


def window_indices(grid: tuple[int, int], size: int, stride: int = 1) -> torch.Tensor:
    """(n, size*size) row-major patch indices of every size x size window, row-major order.

    A 15x15 grid gives 196 windows of 2x2 and 169 of 3x3 at stride 1.
    """
    h, w = grid
    if not 1 <= size <= min(h, w) or stride < 1:
        raise ValueError(f"no {size}x{size} windows at stride {stride} on a {h}x{w} grid")
    patches = torch.arange(h * w).reshape(h, w)
    return patches.unfold(0, size, stride).unfold(1, size, stride).reshape(-1, size * size)


def window_sets(
    grid: tuple[int, int], sizes: Sequence[int] = WINDOWS, stride: int = 1
) -> list[torch.Tensor]:
    """``window_indices`` per window size (WinCLIP: 2x2 and 3x3 at stride 1)."""
    return [window_indices(grid, size, stride) for size in sizes]


def harmonic_aggregation(
    window_scores: torch.Tensor, windows: torch.Tensor, grid: tuple[int, int]
) -> torch.Tensor:
    """(B, n) window scores -> (B, h, w): each patch's harmonic mean over the windows holding it.

    ``S(u) = |W_u| / sum_{W containing u} 1 / s_W`` (a window scored 0 makes its patches 0);
    a patch in no window is an error.
    """
    h, w = grid
    index = windows.reshape(-1).to(window_scores.device)
    count = torch.bincount(index, minlength=h * w).to(window_scores.dtype)
    if bool((count == 0).any()):
        raise ValueError(f"some patches of the {h}x{w} grid lie in no window")
    inverse = (1.0 / window_scores).repeat_interleave(windows.shape[1], dim=1)
    total = window_scores.new_zeros(window_scores.shape[0], h * w).index_add_(1, index, inverse)
    return (count / total).reshape(-1, h, w)


def harmonic_fusion(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Element-wise harmonic mean of equally shaped maps."""
    stacked = torch.stack(list(maps))
    return len(maps) / (1.0 / stacked).sum(dim=0)


def zero_shot(
    cls: torch.Tensor,
    window_embeddings: Sequence[torch.Tensor],
    windows: Sequence[torch.Tensor],
    prototypes: torch.Tensor,
    grid: tuple[int, int],
    temperature: float = TEMPERATURE,
    include_image: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """WinCLIP zero-shot: image scores (B,) and patch-grid maps (B, h, w).

    ``cls`` (B, D) are image embeddings; ``window_embeddings[i]`` (B, n_i, D) those of
    ``windows[i]``. Per window size the window scores are aggregated harmonically to patches;
    the map is the harmonic mean of those per-size maps and (``include_image``, anomalib's
    three-way fusion; ambiguous in the paper) the image score broadcast to the grid.
    """
    image = anomaly_probability(cls, prototypes, temperature)
    maps = [
        harmonic_aggregation(anomaly_probability(emb, prototypes, temperature), win, grid)
        for emb, win in zip(window_embeddings, windows, strict=True)
    ]
    if include_image:
        maps.append(image[:, None, None].expand(-1, *grid))
    return image, harmonic_fusion(maps)


def association_scores(
    queries: torch.Tensor, memory: torch.Tensor, chunk: int = 4096
) -> torch.Tensor:
    """min over ``memory`` (M, D) of (1 - cos) / 2 for each (..., D) query -> (...).

    Clamped at 0: rounding can put a cosine just above 1, and a negative score would break the
    harmonic aggregation (1/s must not change sign).
    """
    flat = F.normalize(queries.reshape(-1, queries.shape[-1]), dim=-1)
    bank = F.normalize(memory, dim=-1)
    best = torch.cat([(part @ bank.T).amax(dim=1) for part in flat.split(chunk)])
    return ((1.0 - best).clamp_min(0.0) / 2.0).reshape(queries.shape[:-1])


@dataclass(frozen=True)
class ReferenceMemory:
    """WinCLIP+'s memories of the k normal references, one bank per scale."""

    patches: torch.Tensor  # (k*h*w, D)
    windows: tuple[torch.Tensor, ...]  # per window size: (k*n_i, D)


def reference_memory(
    patch_tokens: torch.Tensor, window_embeddings: Sequence[torch.Tensor]
) -> ReferenceMemory:
    """Banks from the references' (k, h, w, D) patch tokens and (k, n_i, D) window embeddings."""
    return ReferenceMemory(
        patches=patch_tokens.reshape(-1, patch_tokens.shape[-1]),
        windows=tuple(emb.reshape(-1, emb.shape[-1]) for emb in window_embeddings),
    )


def few_shot_map(
    patch_tokens: torch.Tensor,
    window_embeddings: Sequence[torch.Tensor],
    windows: Sequence[torch.Tensor],
    memory: ReferenceMemory,
) -> torch.Tensor:
    """WinCLIP+ visual association map (B, h, w): the arithmetic mean over scales.

    Scales: patches (``patch_tokens`` (B, h, w, D), scored directly) and each window size
    (scored per window, aggregated harmonically to patches). Ambiguous: which patch tokens;
    anomalib uses the last block's tokens after ln_post without proj (encoder token path
    ``ln_post``); the memory must come from the same path.
    """
    grid = tuple(patch_tokens.shape[1:3])
    maps = [association_scores(patch_tokens, memory.patches)]
    for emb, win, bank in zip(window_embeddings, windows, memory.windows, strict=True):
        maps.append(harmonic_aggregation(association_scores(emb, bank), win, grid))
    return torch.stack(maps).mean(dim=0)


def combine_few_shot(
    zero_map: torch.Tensor, image_score: torch.Tensor, few_map: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """WinCLIP+ (scores (B,), maps): score = (s_img + max of few-shot map) / 2, map = the mean
    of the zero- and few-shot maps. Both on the patch grid, before upsampling (anomalib takes the
    max there; ambiguous in the paper).
    """
    return (image_score + few_map.amax(dim=(-2, -1))) / 2.0, (zero_map + few_map) / 2.0


def encode_window_sets(
    encoder: ClipEncoder, batches: Iterator[torch.Tensor], sizes: Sequence[int]
) -> dict[str, np.ndarray]:
    """``w<k>`` (N, n_k, D) per window side k: the projected CLS of each k x k window."""
    windows = {k: window_indices(encoder.grid, k) for k in sizes}
    parts: dict[int, list[torch.Tensor]] = {k: [] for k in sizes}
    for batch in batches:
        for k, index in windows.items():
            parts[k].append(encoder.encode_windows(batch, index).float().cpu())
    return {f"w{k}": torch.cat(parts[k]).numpy() for k in sizes}
