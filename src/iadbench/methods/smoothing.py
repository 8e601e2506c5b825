"""Patch-score grids to evaluation-size maps, shared by the feature kinds (PatchCore, PaDiM)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from iadbench.methods.shared import BLUR_BORDERS


def smooth_map(
    patch_scores: np.ndarray,
    out_size: tuple[int, int],
    sigma: float,
    mode: str = "bilinear",
    border: str = "reflect",
) -> np.ndarray:
    """(h, w) patch scores -> (H, W) map: upsampling (``mode``) then Gaussian blur.

    The blur is scipy's ``gaussian_filter`` (radius ``int(4 sigma + 0.5)``, the same 33 taps at
    sigma 4 as anomalib's 2-D kernel), with the image border extended as ``border`` says
    (:data:`BLUR_BORDERS`); the two modes differ only within about 2 sigma of the border.
    """
    if border not in BLUR_BORDERS:
        raise ValueError(f"blur border {border!r}: expected one of {BLUR_BORDERS}")
    tensor = torch.from_numpy(np.ascontiguousarray(patch_scores, dtype=np.float32))[None, None]
    corners = {"align_corners": False} if mode == "bilinear" else {}
    up = F.interpolate(tensor, size=out_size, mode=mode, **corners)[0, 0].numpy()
    if sigma > 0:
        from scipy.ndimage import gaussian_filter  # here: fit jobs need no scipy

        return gaussian_filter(up, sigma=sigma, mode=border)
    return up
