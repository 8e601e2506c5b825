"""ResCLIP's residual cross-correlation self-attention (RCS, METHODS §4.3, §12.3a), as tensors.

RCS replaces the attention weights of the final block used for dense tokens by a mix of that
block's own self-correlation weights ``A_s`` and ``A_c``, the mean of the *standard*
``softmax(Q Kᵀ s)`` weights of intermediate blocks. :mod:`.refined` computes both on its refined
path and calls :func:`rcs_attention` in its last block; this module holds only the maths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from iadbench.errors import ConfigError
from iadbench.methods.crane.params import RCS_LAMBDA, RCS_TAU


@dataclass(frozen=True)
class Rcs:
    """RCS options. ``lam = 0`` with ``tau = 1`` gives back the block's own attention.

    Ambiguous: METHODS §12 writes ``A = (1 - λ)·A_s + λ·A_c`` without ``tau``; §4.3 (and
    ResCLIP's code) multiply the mix by ``tau`` after the softmax, so ``tau = 1`` is §12's
    formula. ``layers`` (0-based, negatives from the end): None = ResCLIP's blocks 5-8 of 12
    scaled to the encoder's depth (:func:`~iadbench.methods.crane.params.rcs_layers`).
    ``scale_by_terms``: ``A_c`` weighted by the number of E-Attn terms, so its share of each row
    stays ``lam`` (:func:`rcs_attention`); false mixes it as ResCLIP's code writes the formula,
    which is the same for a one-term ``attn_type``.
    """

    lam: float = RCS_LAMBDA
    tau: float = RCS_TAU
    layers: tuple[int, ...] | None = None
    scale_by_terms: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.lam <= 1.0:
            raise ConfigError(f"RCS lambda {self.lam} is not in [0, 1]")
        if not self.tau > 0.0:
            raise ConfigError(f"RCS tau {self.tau} must be positive")
        if self.layers is not None and not self.layers:
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
    terms: int = 1,
) -> torch.Tensor:
    """``tau·[(1 - lam)·A_s + lam·terms·A_c]``: the weights the final block applies to its values.

    ResCLIP mixes a row-stochastic ``A_s`` (rows sum to 1) with ``A_c``; here ``A_s`` is the
    E-Attn *sum* of ``terms`` softmaxes (rows sum to ``terms``), so ``A_c`` (rows sum to 1) is
    scaled by ``terms``: its share of every row is ``lam``, as in ResCLIP, and the E-Attn scale
    is kept. ``terms = 1`` is ResCLIP's formula.
    """
    return tau * ((1.0 - lam) * self_attention + lam * terms * cross_attention)
