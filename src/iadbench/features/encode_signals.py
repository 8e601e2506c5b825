"""Audio and welding-sensor encoders.

Spectral audio features run at each file's native rate (window and hop are seconds, turned into
samples with that rate): resampling 16 kHz audio to 192 kHz, as a public reimplementation did,
invents nothing but costs twelve times the compute. A split whose files differ in rate is
refused, since one ``rate_hz`` and one frequency axis must describe all of them. A pretrained
audio model (AST) is the exception: it only knows its training rate, so audio is resampled to
the rate its feature extractor names, and that is logged and recorded.
"""

from __future__ import annotations

import logging
import math

import librosa
import numpy as np
import pandas as pd
import torch

from iadbench.backbones.hf import load_hf_extractor, load_hf_model, model_config
from iadbench.data.media import (
    SENSOR_SIGNALS,
    probe_audio,
    read_audio,
    read_sensor,
    resample_sensor,
)
from iadbench.errors import DataError
from iadbench.features.encoding import View, autocast, chunks
from iadbench.features.modalities import EncoderConfig

log = logging.getLogger(__name__)

# Floor under the power (or magnitude) before the log: digital silence must not give -inf.
LOG_FLOOR = 1e-10


def split_rate(rows: pd.DataFrame) -> int:
    """The one sample rate of the split's audio files, read from their headers."""
    rates: dict[int, str] = {}
    for path in rows["audio_path"]:
        rates.setdefault(int(probe_audio(path).samplerate), str(path))
    if len(rates) > 1:
        (rate_a, path_a), (rate_b, path_b) = list(rates.items())[:2]
        raise DataError(
            path_b,
            f"sampled at {rate_b} Hz, but {path_a} at {rate_a} Hz: audio of one split must share "
            "its rate (spectral frames and frequency bins would mean different things)",
        )
    return next(iter(rates))


def frame_samples(seconds: float, rate: int) -> int:
    """A duration in samples at ``rate`` (at least one)."""
    return max(1, round(seconds * rate))


def fbank_frames(rate: int) -> tuple[int, int]:
    """(window, shift) in samples of the AST extractor's filterbank, as it computes them:
    torchaudio's Kaldi fbank takes 25 ms / 10 ms, its numpy fallback 400 / 160 samples (the
    same at AST's 16 kHz, not at other rates)."""
    from transformers.utils import is_speech_available

    if is_speech_available():
        return frame_samples(0.025, rate), frame_samples(0.010, rate)
    return 400, 160


class SpectralAudio:
    """One token per STFT frame: log-mel energies or log-magnitudes, at the native rate."""

    def __init__(self, cfg: EncoderConfig, rows: pd.DataFrame) -> None:
        self.cfg = cfg
        self.rate = split_rate(rows)
        self.n_fft = frame_samples(cfg.window_s, self.rate)
        self.hop = frame_samples(cfg.hop_s, self.rate)
        self.mel = (
            librosa.filters.mel(sr=self.rate, n_fft=self.n_fft, n_mels=cfg.n_mels)
            if cfg.features == "logmel"
            else None
        )

    def encode(self, row: pd.Series) -> list[View]:
        audio = read_audio(row["audio_path"])
        if len(audio.samples) < self.n_fft:
            raise DataError(
                row["audio_path"],
                f"{len(audio.samples)} samples, shorter than one {self.n_fft}-sample window",
            )
        spec = np.abs(
            librosa.stft(audio.samples, n_fft=self.n_fft, hop_length=self.hop, center=False)
        )
        if self.mel is not None:
            spec = self.mel @ (spec**2)
        return [View(np.log(spec + LOG_FLOOR).T.astype(np.float32))]

    def meta(self) -> dict:
        return {
            "rate_hz": self.rate / self.hop,
            "layer_dims": None,
            "sample_rate": self.rate,
            "n_fft": self.n_fft,
            "hop_samples": self.hop,
        }


class HfAudio:
    """An audio transformer (AST): patch tokens averaged over frequency, one per time step.

    Long audio is cut into windows of the extractor's ``max_length`` frames that advance by
    exactly the time patches they yield, so tokens stay evenly spaced across window borders.
    """

    def __init__(self, cfg: EncoderConfig, rows: pd.DataFrame, device: torch.device) -> None:
        self.cfg = cfg
        self.device = device
        self.source_rate = split_rate(rows)
        self.extractor = load_hf_extractor(cfg.hf)
        self.model = load_hf_model(cfg.hf, device)
        config = model_config(cfg.hf)
        self.rate = int(self.extractor.sampling_rate)
        patch = int(config.get("patch_size", 16))
        self.f_dim = (int(config["num_mel_bins"]) - patch) // int(config["frequency_stride"]) + 1
        self.t_stride = int(config["time_stride"])
        self.t_dim = (int(self.extractor.max_length) - patch) // self.t_stride + 1
        self.patch = patch
        self.prefix = 2  # CLS and distillation tokens
        self.window, self.shift = fbank_frames(self.rate)
        if self.source_rate != self.rate:
            log.info(
                "audio resampled %d Hz -> %d Hz (the rate %s was trained at)",
                self.source_rate,
                self.rate,
                cfg.hf,
            )

    def encode(self, row: pd.Series) -> list[View]:
        samples = read_audio(row["audio_path"]).samples
        if self.source_rate != self.rate:
            samples = librosa.resample(samples, orig_sr=self.source_rate, target_sr=self.rate)
        n_frames = 1 + (len(samples) - self.window) // self.shift
        if n_frames < self.patch:
            raise DataError(row["audio_path"], f"too short for one {self.patch}-frame AST patch")
        n_tokens = (n_frames - self.patch) // self.t_stride + 1
        step = self.t_dim * self.t_stride * self.shift
        window = int(self.extractor.max_length) * self.shift
        starts = range(0, math.ceil(n_tokens / self.t_dim) * step, step)
        pieces = [samples[s : s + window] for s in starts]
        tokens = [self._tokens(pieces[part]) for part in chunks(len(pieces), self.cfg.batch_size)]
        return [View(np.concatenate(tokens)[:n_tokens])]

    @torch.inference_mode()
    def _tokens(self, pieces: list[np.ndarray]) -> np.ndarray:
        inputs = self.extractor(pieces, sampling_rate=self.rate, return_tensors="pt")
        with autocast(self.device):
            hidden = self.model(input_values=inputs["input_values"].to(self.device))
        patches = hidden.last_hidden_state[:, self.prefix :].float()
        grid = patches.view(len(pieces), self.f_dim, self.t_dim, -1)
        return grid.mean(dim=1).flatten(0, 1).cpu().numpy()

    def meta(self) -> dict:
        return {
            "rate_hz": self.rate / (self.t_stride * self.shift),
            "layer_dims": None,
            "sample_rate": self.rate,
            "resampled_from": self.source_rate if self.source_rate != self.rate else None,
        }


class SensorEncoder:
    """The six raw signals resampled to a fixed length, not normalised (methods do that with
    training statistics, so a level shift stays visible)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        self.length = cfg.length

    def encode(self, row: pd.Series) -> list[View]:
        return [View(resample_sensor(read_sensor(row["sensor_path"]), self.length))]

    def meta(self) -> dict:
        return {"rate_hz": None, "layer_dims": None, "channels": list(SENSOR_SIGNALS)}
