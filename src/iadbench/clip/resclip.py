"""ResCLIP's residual cross-correlation self-attention (RCS, METHODS §4.3, §12.3a), as tensors.

RCS replaces the attention weights of the final block used for dense tokens by a mix of that
block's own self-correlation weights ``A_s`` and ``A_c``, the mean of the *standard*
``softmax(Q Kᵀ s)`` weights of intermediate blocks. :mod:`.crane` computes both on its refined
path and calls :func:`rcs_attention` in its last block; this module holds only the maths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from iadbench.errors import ConfigError

RCS_LAMBDA = 0.3  # ResCLIP's VOC21 config (tau, lambda)_rcs = (2.0, 0.3)
RCS_TAU = 2.0
RCS_LAYERS = (5, 6, 7, 8)  # ResCLIP's intermediate blocks 6-9 (1-based) of a 12-block ViT-B/16


@dataclass(frozen=True)
class Rcs:
    """RCS options. ``lam = 0`` with ``tau = 1`` gives back the block's own attention.

    Ambiguous: METHODS §12 writes ``A = (1 - λ)·A_s + λ·A_c`` without ``tau``; §4.3 (and
    ResCLIP's code) multiply the mix by ``tau`` after the softmax, so ``tau = 1`` is §12's
    formula. ``layers`` are ResCLIP's for 12 blocks (0-based, negatives from the end); which
    blocks a 24-block ViT-L should average is not specified, so they stay an option.
    """

    lam: float = RCS_LAMBDA
    tau: float = RCS_TAU
    layers: tuple[int, ...] = RCS_LAYERS

    def __post_init__(self) -> None:
        if not 0.0 <= self.lam <= 1.0:
            raise ConfigError(f"RCS lambda {self.lam} is not in [0, 1]")
        if not self.tau > 0.0:
            raise ConfigError(f"RCS tau {self.tau} must be positive")
        if not self.layers:
            raise ConfigError("RCS needs at least one intermediate block to average")


def mean_attention(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """``A_c``: the element-wise mean of equally shaped (B, H, N, N) attention weights."""
    if not maps:
        raise ValueError("no attention maps to average")
    return torch.stack(list(maps)).mean(dim=0)


def rcs_attention(
    self_attention: torch.Tensor,
    cross_attention: torch.Tensor,
    lam: float = RCS_LAMBDA,
    tau: float = RCS_TAU,
) -> torch.Tensor:
    """``tau·[(1 - lam)·A_s + lam·A_c]``: the weights the final block applies to its values."""
    return tau * ((1.0 - lam) * self_attention + lam * cross_attention)
