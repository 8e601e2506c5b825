"""FE-CLIP's frequency adapters (METHODS §3), pure torch on (B, H, W, D) patch-token grids.

FFE splits the grid into non-overlapping P×P windows, takes each window's orthonormal 2-D
DCT-II per channel, mixes channels with an MLP at every frequency position and inverts the DCT.
LFS takes the DCT of the Q×Q window around every token (stride 1), reduces the Q² coefficients
to one statistic per channel and mixes neighbours with a 3×3 convolution. Both pad by
replicating the border, so any grid size works.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from iadbench.methods.fe_clip.params import LFS_STATS


def dct_matrix(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(n, n) orthonormal DCT-II: ``C[k, i] = a_k cos(pi (i + 1/2) k / n)``, so ``C Cᵀ = I``."""
    if n < 1:
        raise ValueError(f"DCT size must be >= 1, got {n}")
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    c = torch.cos(math.pi * (i + 0.5) * k / n) * math.sqrt(2.0 / n)
    c[0] = math.sqrt(1.0 / n)
    return c.to(dtype)


def _pad_to_multiple(grid: torch.Tensor, p: int) -> torch.Tensor:
    """(B, H, W, D) replicate-padded at the bottom/right to multiples of ``p``."""
    h, w = grid.shape[1:3]
    ph, pw = -h % p, -w % p
    if not ph and not pw:
        return grid
    x = F.pad(grid.permute(0, 3, 1, 2), (0, pw, 0, ph), mode="replicate")
    return x.permute(0, 2, 3, 1)


class FFE(nn.Module):
    """Frequency-aware feature extraction: blockwise DCT, channel MLP, inverse DCT, crop."""

    def __init__(self, dim: int, p: int = 3) -> None:
        super().__init__()
        self.p = int(p)
        self.register_buffer("c", dct_matrix(self.p, torch.float64), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU())

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        b, h, w, d = grid.shape
        p, c = self.p, self.c.to(grid.dtype)
        x = _pad_to_multiple(grid, p)
        hp, wp = x.shape[1] // p, x.shape[2] // p
        windows = x.reshape(b, hp, p, wp, p, d)  # (b, row block, i, col block, j, d)
        coeff = torch.einsum("ki,bxiyjd,lj->bxkyld", c, windows, c)
        coeff = self.mlp(coeff)
        back = torch.einsum("ki,bxkyld,lj->bxiyjd", c, coeff, c)
        return back.reshape(b, hp * p, wp * p, d)[:, :h, :w]


def window_dct(grid: torch.Tensor, q: int) -> torch.Tensor:
    """(B, D, Q, Q, H, W): the 2-D DCT of the Q×Q window around each token (replicate pad)."""
    b, h, w, d = grid.shape
    x = grid.permute(0, 3, 1, 2)
    before, after = (q - 1) // 2, q // 2
    x = F.pad(x, (before, after, before, after), mode="replicate")
    patches = F.unfold(x, q).reshape(b, d, q, q, h, w)
    c = dct_matrix(q, grid.dtype).to(grid.device)
    return torch.einsum("ki,bdijhw,lj->bdklhw", c, patches, c)


class LFS(nn.Module):
    """Local frequency statistics: sliding-window DCT, mean of (signed | abs | squared)
    coefficients per channel, then a 3×3 convolution and GELU."""

    def __init__(self, dim: int, q: int = 3, stat: str = "signed") -> None:
        super().__init__()
        if stat not in LFS_STATS:
            raise ValueError(f"lfs_stat must be one of {', '.join(LFS_STATS)}, got {stat!r}")
        self.q, self.stat = int(q), stat
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        coeff = window_dct(grid, self.q)
        if self.stat == "abs":
            coeff = coeff.abs()
        elif self.stat == "power":
            coeff = coeff.square()
        stats = coeff.mean(dim=(2, 3))  # (B, D, H, W)
        return F.gelu(self.conv(stats)).permute(0, 2, 3, 1)


class FrequencyAdapter(nn.Module):
    """FFE + LFS at one tap, fused as ``lam·(f_ffe + f_lfs) + (1 − lam)·f``."""

    def __init__(self, dim: int, p: int, q: int, stat: str, lam: float) -> None:
        super().__init__()
        self.ffe, self.lfs, self.lam = FFE(dim, p), LFS(dim, q, stat), float(lam)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        if self.lam == 0.0:  # exactly the frozen tokens (no 0·x rounding, no wasted compute)
            return grid
        return self.lam * (self.ffe(grid) + self.lfs(grid)) + (1.0 - self.lam) * grid
