"""PatchCore's locally aware patch features, built from several backbone taps.

Each tap is average-pooled over a ``patch_size`` neighbourhood (stride 1, so the grid keeps its
size), deeper taps are bilinearly upsampled to the shallowest tap's grid, channels are
concatenated, and optionally reduced to ``dim`` channels by adaptive average pooling over the
channel axis (the official implementation's "MeanMapper" reduction).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def aggregate_patches(
    taps: list[torch.Tensor], patch_size: int = 3, dim: int | None = None
) -> torch.Tensor:
    """(B, C_i, H_i, W_i) per tap -> (B, H_0, W_0, C) patch features on the finest tap's grid."""
    if not taps:
        raise ValueError("no feature taps to aggregate")
    height, width = taps[0].shape[-2:]
    parts = []
    for tap in taps:
        tap = tap.float()
        if patch_size > 1:
            tap = F.avg_pool2d(
                tap, patch_size, stride=1, padding=patch_size // 2, count_include_pad=False
            )
        if tap.shape[-2:] != (height, width):
            tap = F.interpolate(tap, size=(height, width), mode="bilinear", align_corners=False)
        parts.append(tap)
    feats = torch.cat(parts, dim=1).permute(0, 2, 3, 1)
    if dim is not None and dim != feats.shape[-1]:
        b, h, w, c = feats.shape
        feats = F.adaptive_avg_pool1d(feats.reshape(b * h * w, 1, c), dim).reshape(b, h, w, dim)
    return feats.contiguous()
