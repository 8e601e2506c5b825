"""Patch-score grids to evaluation-size maps, shared by the feature kinds (PatchCore, PaDiM)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def smooth_map(
    patch_scores: np.ndarray, out_size: tuple[int, int], sigma: float, mode: str = "bilinear"
) -> np.ndarray:
    """(h, w) patch scores -> (H, W) map: upsampling (``mode``) then Gaussian blur."""
    tensor = torch.from_numpy(np.ascontiguousarray(patch_scores, dtype=np.float32))[None, None]
    corners = {"align_corners": False} if mode == "bilinear" else {}
    up = F.interpolate(tensor, size=out_size, mode=mode, **corners)[0, 0].numpy()
    if sigma > 0:
        from scipy.ndimage import gaussian_filter  # here: fit jobs need no scipy

        return gaussian_filter(up, sigma=sigma)
    return up
