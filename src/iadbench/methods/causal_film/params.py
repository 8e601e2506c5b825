"""Causal-FiLM's parameters and needs (torch-free: the DAG build reads them), and the value
lists its networks share with them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.data.sensor_modes import NORMALISE_MODES
from iadbench.errors import ConfigError
from iadbench.methods.multimodal.params import ENTRY_KEYS, MultimodalParams, encoders_param
from iadbench.methods.params import param

SENSOR_ENCODERS = ("gru", "mamba")


@dataclass(frozen=True)
class CausalFilmParams(MultimodalParams):
    """Causal-FiLM (METHODS §6.3): sensor-modulated video/audio process embedding predicts the
    post-weld photos' embedding; the prediction error is the score.

    ``sensor_encoder``: GRU or a selective-scan (Mamba-style) block of width ``sensor_dim``;
    ``sensor_norm``: z-score sensor channels with the TRAIN statistics or per run. Loss
    ``(1 − cos) + l1_weight·L1 + gram_weight·Gram``; score ``(1 − cos) + score_weight · mean of
    the top score_top_k fraction of |Z − Ẑ|``. AdamW with ``warmup_epochs`` then cosine, ``ema``
    (null = off), ``grad_clip`` (null = off), AMP on CUDA only; the epoch with the best VAL
    I-AUROC is kept. Defaults: the reference recipe (lr 2e-5, wd 2e-3, 100 epochs, batch 32,
    8 warm-up epochs, EMA 0.9999, d 512, 2 layers, 4 heads, GeM p 3, dropout 0.2).
    ``text_anchor`` ``{prompt, weight}`` adds ``weight · (1 − cos(W·Ẑ, t))`` to the loss, ``t``
    the prompt's unit embedding by the CLIP entry named in ``backbone:`` (which it requires) and
    ``W`` a learned linear map; training only, the score has no text term. null = off.
    """

    implementation: ClassVar[str] = "iadbench.methods.causal_film.method:CausalFilm"
    kind_name: ClassVar[str] = "causal_film"
    roles: ClassVar[tuple[str, ...]] = ("video", "audio", "sensor", "photo")
    entry_keys: ClassVar[dict[str, str]] = {
        **ENTRY_KEYS,
        "seed": "the network's initialisation and the training loop's shuffles",
        "backbone": "a CLIP backbone entry: the text tower of text_anchor (only with it)",
    }

    encoders: dict = encoders_param("video", "audio", "sensor", "photo")
    sensor_encoder: str = param(
        "gru",
        "sensor context: one GRU layer, or a selective-scan block (Mamba-style, d_state 16, "
        "d_conv 4, expand 2, plain PyTorch); the last real step gives (gamma', beta)",
        enum=list(SENSOR_ENCODERS),
    )
    sensor_dim: int = param(64, "width of the sensor encoder", minimum=1)
    sensor_norm: str = param(
        "train",
        "z-score sensor channels with the TRAIN runs' statistics (keeps level shifts) or each "
        "run with its own (keeps only signal shapes)",
        enum=list(NORMALISE_MODES),
    )
    d_model: int = param(512, "model width (a multiple of heads)", minimum=1)
    layers: int = param(2, "transformer decoder layers (video queries, audio keys)", minimum=1)
    heads: int = param(4, "attention heads of the decoder layers", minimum=1)
    gem_p: float = param(3.0, "initial GeM exponent (learned) of the photo taps", minimum=1)
    decoder_dropout: float = param(
        0.2,
        "dropout of the MLP predicting Z_result from Z_process (noisy bottleneck)",
        minimum=0,
        exclusiveMaximum=1,
    )
    l1_weight: float = param(10.0, "weight of the L1 loss", minimum=0)
    gram_weight: float = param(1.0, "weight of ||Gram(Z) - Gram(Z^)||_F / B", minimum=0)
    score_weight: float = param(10.0, "weight of the top-k L1 term of the score", minimum=0)
    score_top_k: float = param(
        0.5,
        "fraction of the largest |Z - Z^| dimensions averaged in the score",
        exclusiveMinimum=0,
        maximum=1,
    )
    epochs: int = param(100, "training epochs (the best on VAL is kept)", minimum=1)
    batch_size: int = param(32, "runs per optimiser step", minimum=1)
    lr: float = param(2e-5, "AdamW learning rate", exclusiveMinimum=0)
    weight_decay: float = param(2e-3, "AdamW weight decay", minimum=0)
    warmup_epochs: int = param(
        8, "linear lr warm-up before the cosine schedule (at most epochs)", minimum=0
    )
    ema: float | None = param(
        0.9999,
        "decay of the weights' moving average used for VAL selection and scoring; null = off",
        exclusiveMinimum=0,
        exclusiveMaximum=1,
    )
    grad_clip: float | None = param(
        1.0, "maximum global gradient norm; null = no clipping", exclusiveMinimum=0
    )
    amp: bool = param(True, "autocast + GradScaler on CUDA only")
    text_anchor: dict | None = param(
        None,
        "adds weight * (1 - cos(W Z^, t)) to the training loss: t the unit CLIP text embedding "
        "of prompt (by the backbone: entry, required with it), W a learned linear map Z^ -> "
        "CLIP space; the score has no text term. null = off",
        additionalProperties=False,
        required=["prompt", "weight"],
        properties={
            "prompt": {
                "type": "string",
                "pattern": "\\S",
                "description": "e.g. a normal weld",
            },
            "weight": {"type": "number", "exclusiveMinimum": 0, "description": "e.g. 0.1"},
        },
    )

    def check(self) -> None:
        kind = self.kind_name
        if self.text_anchor is not None and not math.isfinite(self.text_anchor["weight"]):
            raise ConfigError(
                f"{kind} text_anchor.weight must be a finite number > 0, "
                f"got {self.text_anchor['weight']!r}"
            )
        if int(self.d_model) % int(self.heads):
            raise ConfigError(f"{kind} d_model {self.d_model} is not a multiple of heads")
        if int(self.warmup_epochs) > int(self.epochs):
            raise ConfigError(f"{kind} warmup_epochs must be in 0..epochs")

    def splits_read(self) -> frozenset[str]:
        return frozenset({"val"})

    def describe(self, state: dict) -> dict[str, Any]:
        return {
            **super().describe(state),
            "sensor_encoder": self.sensor_encoder,
            "sensor_norm": self.sensor_norm,
            "d_model": int(self.d_model),
            "epochs": int(self.epochs),
            "lr": float(self.lr),
            "warmup_epochs": int(self.warmup_epochs),
            "ema": self.ema,
            "text_anchor": (
                f"{self.text_anchor['weight']:g}:{self.text_anchor['prompt']}"
                if self.text_anchor
                else None
            ),
            "text_anchor_clip": (state.get("text_anchor") or {}).get("clip"),
            "selection": state.get("selection"),
        }
