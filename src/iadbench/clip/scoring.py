"""Two-class CLIP scoring shared by the zero-shot kinds (WinCLIP, Crane), as tensor functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def anomaly_probability(
    embeddings: torch.Tensor, prototypes: torch.Tensor, temperature: float
) -> torch.Tensor:
    """softmax([cos(x, t_n), cos(x, t_a)] / temperature)[1] over the last dim of ``embeddings``.

    Ambiguous: a fixed temperature (METHODS, anomalib: 0.07, each kind's ``temperature``
    parameter) rather than the model's learned logit scale.
    """
    cos = F.normalize(embeddings, dim=-1) @ F.normalize(prototypes, dim=-1).T
    return (cos / temperature).softmax(dim=-1)[..., 1]


def upsample(
    maps: torch.Tensor, size: tuple[int, int], align_corners: bool = False
) -> torch.Tensor:
    """(B, h, w) -> (B, H, W), bilinear (METHODS; the corner convention is anomalib's default)."""
    out = F.interpolate(
        maps[:, None], size=tuple(size), mode="bilinear", align_corners=align_corners
    )
    return out[:, 0]
