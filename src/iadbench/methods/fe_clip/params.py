"""FE-CLIP's parameters and needs (torch-free: the DAG build reads them), and the value lists
its adapters share with them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.backbones.registry import resolve_layers
from iadbench.methods.clip_trained.params import TEMPERATURE, LearnedClipParams, betas_param
from iadbench.methods.params import param
from iadbench.methods.shared import BLOCK_LIST, LAST_N

LFS_STATS = ("signed", "abs", "power")
MAPS = ("prob", "logit_margin")


@dataclass(frozen=True)
class FeClipParams(LearnedClipParams):
    """FE-CLIP (METHODS §3): FFE + LFS adapters fused into the residual stream at ``taps``.

    ``lam``: the fusion weight λ (``lambda`` is a Python keyword); ``P``/``Q``: FFE and LFS
    window sides; ``lfs_stat``: the statistic of the Q×Q DCT coefficients; ``fc_lr_mult``:
    ``fc_patch``'s lr as a factor of ``lr`` (0 = CLIP's own projection, frozen); ``map``: each
    tap's softmax probability or logit margin, averaged over taps; ``cls_weight``: the image
    loss's weight. Defaults: the paper's (λ 0.1, P = Q = 3, Adam 5e-4, 9 epochs, batch 16) and,
    where it is silent, a public reproduction's best (METHODS §3: taps 15/18/21/23 of 24 =
    [-9, -6, -3, -1], signed LFS mean, fc lr / 100, fixed τ 0.07).
    """

    implementation: ClassVar[str] = "iadbench.methods.fe_clip.method:FeClip"
    kind_name: ClassVar[str] = "fe_clip"
    order: ClassVar[tuple[str, ...]] = (
        "prompts", "class_name", "smooth_sigma", "focal_weight", "dice_weight", "batch_size",
        "amp", "taps", "temperature", "lam", "P", "Q", "lfs_stat", "fc_lr_mult", "map",
        "cls_weight", "epochs", "lr", "betas", "frozen_cache",
    )  # fmt: skip

    batch_size: int = param(16, "images per optimiser step", minimum=1)
    taps: list | str = param(
        [-9, -6, -3, -1],
        'adapted blocks (0-based, negative from the end, or "lastN"); default [-9, -6, -3, -1] '
        "= 15/18/21/23 of ViT-L (a public reproduction's best; last4 was its first choice)",
        schema={"oneOf": [BLOCK_LIST, LAST_N]},
    )
    temperature: float | str = param(
        0.07,
        "two-class softmax temperature, or learned (from CLIP's logit scale)",
        schema=TEMPERATURE,
    )
    lam: float = param(
        0.1, "fusion lambda: lam (f_ffe + f_lfs) + (1 - lam) f (paper 0.1)", minimum=0, maximum=1
    )
    P: int = param(3, "FFE window side (paper 3)", minimum=1)
    Q: int = param(3, "LFS window side (paper 3)", minimum=1)
    lfs_stat: str = param(
        "signed",
        "mean of the Q x Q DCT coefficients, of their absolute values or squares",
        enum=list(LFS_STATS),
    )
    fc_lr_mult: float = param(
        0.01, "fc_patch lr / lr (0 = CLIP's proj, frozen; reproduction's best 0.01)", minimum=0
    )
    map: str = param(
        "prob",
        "per-tap anomaly probability or logit margin, averaged over taps",
        enum=list(MAPS),
    )
    cls_weight: float = param(1.0, "weight of the image CE loss", minimum=0)
    epochs: int = param(9, "training epochs (paper 9)", minimum=1)
    lr: float = param(0.0005, "Adam's learning rate (paper 5e-4)", exclusiveMinimum=0)
    betas: list = betas_param([0.9, 0.999])

    def frozen_blocks(self, model: str) -> tuple[int, ...]:
        first = resolve_layers(model, self.taps)[0]  # the stream entering it = block first-1's
        return (first - 1,) if first > 0 else ()

    def describe(self, state: dict) -> dict[str, Any]:
        return {
            **super().describe(state),
            "lam": float(self.lam),
            "P": int(self.P),
            "Q": int(self.Q),
            "lfs_stat": self.lfs_stat,
            "fc_lr_mult": float(self.fc_lr_mult),
            "map": self.map,
            "cls_weight": float(self.cls_weight),
        }
