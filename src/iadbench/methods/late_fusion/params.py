"""late_fusion's parameters and needs (torch-free: the DAG build reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.methods.multimodal.params import ENTRY_KEYS, MultimodalParams, encoders_param
from iadbench.methods.params import param

WIDTHS = {"minItems": 1, "items": {"type": "integer", "minimum": 1}}


@dataclass(frozen=True)
class LateFusionParams(MultimodalParams):
    """Late fusion of an audio and a video autoencoder (METHODS §6.3, the Intel paper).

    Audio: a Conv1d autoencoder over the audio embedding's frames (``audio_widths``, then
    ``audio_bottleneck``; published 4×1024 and 48), score = mean per-frame error. Video: an FC
    autoencoder per frame (``video_widths``; published 512/256/128/64/64, ``video_dropout``
    0.5), score = max over time of the ``window_s`` moving average of frame errors. Each score is
    z-scored with the TRAIN runs' mean and std; fused ``w·audio + (1 − w)·video`` with ``w`` fixed
    or ``val`` (grid 0..1 step 0.01, best VAL I-AUROC). Small widths and epochs by default.
    """

    implementation: ClassVar[str] = "iadbench.methods.late_fusion.method:LateFusion"
    kind_name: ClassVar[str] = "late_fusion"
    roles: ClassVar[tuple[str, ...]] = ("audio", "video")
    entry_keys: ClassVar[dict[str, str]] = {
        **ENTRY_KEYS,
        "seed": "the autoencoders' initialisation and the training loop's shuffles",
    }

    encoders: dict = encoders_param("audio", "video")
    audio_widths: list = param(
        [64, 64, 64, 64],
        "Conv1d (k3) encoder widths before the bottleneck (published [1024, 1024, 1024, 1024])",
        **WIDTHS,
    )
    audio_bottleneck: int = param(16, "audio bottleneck channels (published 48)", minimum=1)
    audio_padding: str = param(
        "valid",
        "audio convolutions unpadded (valid: no frame sees zeros) or padded by 1 (same: "
        "the bluuueheart/Weld-Anomaly-Detection reimplementation); the paper does not say",
        enum=["valid", "same"],
    )
    audio_leaky_slope: float = param(
        0.01,
        "LeakyReLU negative slope of the audio autoencoder (torch default; the "
        "reimplementation uses 0.2; the paper does not say)",
        minimum=0,
        exclusiveMaximum=1,
    )
    audio_epochs: int = param(10, "audio autoencoder epochs (published 50)", minimum=1)
    audio_lr: float = param(1e-4, "Adam peak lr (30 % warm-up, then cosine)", exclusiveMinimum=0)
    video_widths: list = param(
        [128, 64, 32, 16, 16],
        "FC encoder widths per frame (published [512, 256, 128, 64, 64])",
        **WIDTHS,
    )
    video_dropout: float = param(
        0.5,
        "dropout before the third and later encoder layers and the last decoder layer",
        minimum=0,
        exclusiveMaximum=1,
    )
    video_epochs: int = param(
        10, "video autoencoder epochs (published up to 1000 with early stopping)", minimum=1
    )
    video_lr: float = param(5e-4, "Adam lr of the video autoencoder", exclusiveMinimum=0)
    batch_size: int = param(8, "runs per audio batch", minimum=1)
    video_batch_size: int = param(256, "frames per video batch", minimum=1)
    window_s: float = param(
        2.0,
        "moving-average window of the video frame errors (seconds; the store's rate_hz)",
        exclusiveMinimum=0,
    )
    w: float | str = param(
        "val",
        "audio weight of the fused score, or val (grid 0..1 step 0.01 on VAL I-AUROC)",
        schema={"oneOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"const": "val"}]},
    )

    def splits_read(self) -> frozenset[str]:
        return frozenset({"val"})

    def describe(self, state: dict) -> dict[str, Any]:
        return {
            **super().describe(state),
            "w": self.w,
            "window_s": float(self.window_s),
            "audio_bottleneck": int(self.audio_bottleneck),
            "audio_padding": self.audio_padding,
            "audio_leaky_slope": float(self.audio_leaky_slope),
            "audio_epochs": int(self.audio_epochs),
            "video_epochs": int(self.video_epochs),
        }
