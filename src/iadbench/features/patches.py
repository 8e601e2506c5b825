"""PatchCore's locally aware patch features, built from several backbone taps.

Each tap is average-pooled over a ``patch_size`` neighbourhood (stride 1, so the grid keeps its
size). At the border the zero padding counts in the mean by default, as in the original PatchCore;
``padding="exclude"`` averages only the in-image neighbours (see docs/reference-parity.md for what
that costs). Then each tap is resized to the first tap's grid (the finest: taps come in depth
order; ViT taps already share one grid), bilinearly by default (PatchCore) or by nearest
replication with ``upsample="nearest"`` (PaDiM's published embedding: layer1-3 with
``patch_size=1``, deeper maps repeated onto layer1's grid), and optionally reduced along
channels by adaptive average pooling (the official implementation's "MeanMapper"). Reduction is
per tap, each tap keeping a share of ``dim`` proportional to its channels, so the concatenated
vector stays a sequence of separable per-tap blocks whose widths are :func:`layer_shares` (what
fusion slices).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PADDINGS = ("zeros", "exclude")
UPSAMPLES = ("bilinear", "nearest")


def layer_shares(channels: list[int], dim: int | None = None) -> list[int]:
    """Channels each tap keeps: all of them, or shares of ``dim`` proportional to ``channels``.

    Largest-remainder rounding, so the shares sum to ``dim`` exactly; every tap keeps at least
    one channel, hence ``dim`` must be at least the number of taps.
    """
    if dim is None:
        return list(channels)
    if dim < len(channels):
        raise ValueError(f"dim {dim} is smaller than the number of taps ({len(channels)})")
    total = sum(channels)
    shares = [dim * c // total for c in channels]
    by_remainder = sorted(range(len(channels)), key=lambda i: -(dim * channels[i] % total))
    for i in by_remainder[: dim - sum(shares)]:
        shares[i] += 1
    for i, share in enumerate(shares):
        if share == 0:
            shares[shares.index(max(shares))] -= 1
            shares[i] = 1
    return shares


def locally_aware_patches(
    taps: list[torch.Tensor],
    patch_size: int = 3,
    dim: int | None = None,
    padding: str = "zeros",
    upsample: str = "bilinear",
) -> torch.Tensor:
    """(B, C_i, H_i, W_i) per tap -> (B, H_0, W_0, sum of shares) on the first tap's grid."""
    if padding not in PADDINGS:
        raise ValueError(f"unknown patch padding {padding!r} (known: {', '.join(PADDINGS)})")
    if upsample not in UPSAMPLES:
        raise ValueError(f"unknown upsampling {upsample!r} (known: {', '.join(UPSAMPLES)})")
    if not taps:
        raise ValueError("no feature taps to aggregate")
    height, width = taps[0].shape[-2:]
    shares = layer_shares([t.shape[1] for t in taps], dim)
    parts = []
    for tap, share in zip(taps, shares):
        tap = tap.float()
        if patch_size > 1:
            tap = F.avg_pool2d(
                tap,
                patch_size,
                stride=1,
                padding=patch_size // 2,
                count_include_pad=padding == "zeros",
            )
        if tap.shape[-2:] != (height, width):
            if upsample == "nearest":  # as PaDiM (and anomalib's): F.interpolate mode nearest
                tap = F.interpolate(tap, size=(height, width), mode="nearest")
            else:
                tap = F.interpolate(tap, size=(height, width), mode="bilinear", align_corners=False)
        tap = tap.permute(0, 2, 3, 1)
        if share != tap.shape[-1]:
            b, h, w, c = tap.shape
            tap = F.adaptive_avg_pool1d(tap.reshape(b * h * w, 1, c), share).reshape(b, h, w, share)
        parts.append(tap)
    return torch.cat(parts, dim=-1).contiguous()
