"""Video and photo encoders: a registry backbone or a local transformers model over frames.

Video keeps one token per frame (a registry CNN/ViT: its deepest tap, globally averaged) or per
temporal patch (a video transformer such as V-JEPA 2: its last hidden state averaged over the
spatial patches of each tubelet). Photos keep patch grids, one sequence per photo.
"""

from __future__ import annotations

import inspect
import logging
import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from iadbench.backbones.hf import input_stats, load_hf_model, model_config
from iadbench.backbones.registry import resolve_block
from iadbench.data.media import probe_video, read_photo, read_video
from iadbench.errors import DataError
from iadbench.features.encoding import View, autocast, chunks, normalised
from iadbench.features.extract import FeatureConfig
from iadbench.features.modalities import EncoderConfig

log = logging.getLogger(__name__)

# Videos of one split whose frame rates differ by more than this share are refused under
# ``frames: {stride: N}``: one rate_hz would misstate the time axis of some of them.
FPS_TOLERANCE = 0.01


def split_fps(rows: pd.DataFrame) -> float:
    """The frame rate shared by the split's videos (median), read from their headers."""
    rates = [(probe_video(path).fps, str(path)) for path in rows["video_path"]]
    (low, low_path), (high, high_path) = min(rates), max(rates)
    if high > low * (1 + FPS_TOLERANCE):
        raise DataError(
            high_path,
            f"{high:g} fps, but {low_path} has {low:g} fps: one rate_hz cannot describe both; "
            "use frames: {count: T} or re-encode the videos",
        )
    return float(np.median([fps for fps, _ in rates]))


class RegistryImages:
    """A registered backbone fed normalised uint8 images; returns its taps."""

    def __init__(self, entry: dict, device: torch.device) -> None:
        cfg = FeatureConfig.from_config(entry, {})
        self.backbone = cfg.load_backbone(device)  # honours token_norm (M3DM's DINO tokens)
        self.stats = cfg.preprocessing(self.backbone.preprocessing)
        self.device = device

    @torch.inference_mode()
    def taps(self, images: np.ndarray) -> list[torch.Tensor]:
        batch = normalised(images, self.stats.mean, self.stats.std, self.device)
        with autocast(self.device):
            return [t.float() for t in self.backbone.taps(batch)]


class HfModel:
    """A local transformers vision model with its own input statistics."""

    def __init__(self, path: str, device: torch.device) -> None:
        self.config = model_config(path)
        self.model = load_hf_model(path, device)
        self.mean, self.std = input_stats(path)
        self.device = device

    def batch(self, images: np.ndarray) -> torch.Tensor:
        return normalised(images, self.mean, self.std, self.device)


class VideoEncoder:
    """One token per frame (registry backbone) or per tubelet (transformers video model)."""

    def __init__(self, cfg: EncoderConfig, rows: pd.DataFrame, device: torch.device) -> None:
        self.cfg = cfg
        self.device = device
        self.fps = split_fps(rows) if cfg.count is None else None
        self.net = HfModel(cfg.hf, device) if cfg.hf else RegistryImages(cfg.backbone, device)

    def encode(self, row: pd.Series) -> list[View]:
        video = read_video(
            row["video_path"], stride=self.cfg.stride or 1, count=self.cfg.count, size=self.cfg.size
        )
        encode = self._hf if isinstance(self.net, HfModel) else self._registry
        return [View(encode(video.frames))]

    @torch.inference_mode()
    def _registry(self, frames: np.ndarray) -> np.ndarray:
        pooled = [
            self.net.taps(frames[part])[-1].mean(dim=(2, 3)).cpu()
            for part in chunks(len(frames), self.cfg.batch_size)
        ]
        return torch.cat(pooled).numpy()

    @property
    def tubelet(self) -> int:
        return int(self.net.config.get("tubelet_size", 1)) if isinstance(self.net, HfModel) else 1

    @torch.inference_mode()
    def _hf(self, frames: np.ndarray) -> np.ndarray:
        """Clips of the model's own length (the last one padded with its final frame)."""
        config = self.net.config
        clip = int(config.get("frames_per_clip") or config.get("num_frames") or len(frames))
        n_clips = math.ceil(len(frames) / clip)
        padded = np.concatenate([frames, np.repeat(frames[-1:], n_clips * clip - len(frames), 0)])
        clips = padded.reshape(n_clips, clip, *frames.shape[1:])
        per_batch = max(1, self.cfg.batch_size // clip)
        out = []
        for part in chunks(n_clips, per_batch):
            batch = self.net.batch(clips[part].reshape(-1, *frames.shape[1:]))
            batch = batch.view(-1, clip, *batch.shape[1:])  # (B, T, 3, H, W)
            with autocast(self.device):
                hidden = self._forward(batch).float()
            steps = clip // self.tubelet
            out.append(hidden.view(hidden.shape[0], steps, -1, hidden.shape[-1]).mean(2).cpu())
        tokens = torch.cat(out).flatten(0, 1).numpy()
        return tokens[: math.ceil(len(frames) / self.tubelet)]

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        model = self.net.model
        if "pixel_values_videos" in inspect.signature(model.forward).parameters:  # V-JEPA 2
            return model(pixel_values_videos=batch, skip_predictor=True).last_hidden_state
        return model(pixel_values=batch).last_hidden_state  # VideoMAE-style

    def meta(self) -> dict:
        """``rate_hz`` = fps / stride (/ tubelet); None under ``count`` (it varies by run)."""
        rate = None if self.fps is None else self.fps / self.cfg.stride / self.tubelet
        return {"rate_hz": rate, "layer_dims": None, "tubelet": self.tubelet}


class PhotoEncoder:
    """Patch grids of each photo of a run; several taps or layers concatenated on channels."""

    def __init__(self, cfg: EncoderConfig, device: torch.device) -> None:
        self.cfg = cfg
        self.net = HfModel(cfg.hf, device) if cfg.hf else RegistryImages(cfg.backbone, device)
        self.layer_dims: list[int] = []

    def encode(self, row: pd.Series) -> list[View]:
        paths = [] if row["photo_paths"] is None else list(row["photo_paths"])
        if not paths:
            raise DataError(row["sample_id"], "run has no photos to encode")
        box = list(self.cfg.label_mask) if self.cfg.label_mask else None
        photos = np.stack([read_photo(p, size=self.cfg.size, label_mask=box) for p in paths])
        grids = [self._grids(photos[part]) for part in chunks(len(photos), self.cfg.batch_size)]
        grid = np.concatenate(grids)  # (views, h, w, C)
        h, w = grid.shape[1:3]
        return [View(g.reshape(h * w, -1), (h, w)) for g in grid]

    @torch.inference_mode()
    def _grids(self, photos: np.ndarray) -> np.ndarray:
        if isinstance(self.net, HfModel):
            blocks = self._hidden(photos)
        else:
            taps = self.net.taps(photos)
            size = taps[0].shape[-2:]
            blocks = [
                F.interpolate(t, size=size, mode="bilinear", align_corners=False)
                if t.shape[-2:] != size
                else t
                for t in taps
            ]
            blocks = [b.permute(0, 2, 3, 1) for b in blocks]
        self.layer_dims = [int(b.shape[-1]) for b in blocks]
        return torch.cat(blocks, dim=-1).cpu().numpy()

    def _hidden(self, photos: np.ndarray) -> list[torch.Tensor]:
        """Hidden states after the chosen blocks, patch tokens only, as (N, h, w, D) grids."""
        config = self.net.config
        patch = int(config["patch_size"])
        prefix = 1 + int(config.get("num_register_tokens", 0))
        depth = int(config["num_hidden_layers"])
        h, w = self.cfg.size[0] // patch, self.cfg.size[1] // patch
        with autocast(self.net.device):
            hidden = self.net.model(
                pixel_values=self.net.batch(photos), output_hidden_states=True
            ).hidden_states
        blocks = []
        for layer in self.cfg.layers:
            state = hidden[resolve_block(layer, depth, "photo layer") + 1][:, prefix:].float()
            if state.shape[1] != h * w:
                raise DataError(
                    self.cfg.hf,
                    f"{state.shape[1]} patch tokens after {prefix} prefix tokens, expected "
                    f"{h}x{w} for size {list(self.cfg.size)} and patch {patch}",
                )
            blocks.append(state.reshape(len(photos), h, w, -1))
        return blocks

    def meta(self) -> dict:
        return {"rate_hz": None, "layer_dims": self.layer_dims}
