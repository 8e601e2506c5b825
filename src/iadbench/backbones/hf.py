"""Transformers encoders (V-JEPA 2, AST, DINOv2/v3) from a local ``save_pretrained`` folder.

As with the registry's weights, nothing is downloaded: the folder must hold ``config.json`` and
the weights. Its identity (config plus a digest of every weights file) keys the embedding cache,
so replacing the weights in place invalidates what was computed with the old ones.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from iadbench.backbones.weights import file_digest
from iadbench.errors import WeightsError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
# Used when the folder has no preprocessor config naming the model's own statistics.
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
PREPROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")


def model_dir(path: str | Path) -> Path:
    """The folder, checked to look like a saved transformers model."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise WeightsError(
            f"{folder}: no config.json; hf: path must be a local folder written by "
            "save_pretrained (or a downloaded Hugging Face snapshot); nothing is downloaded"
        )
    return folder


def model_config(path: str | Path) -> dict:
    """``config.json`` as a dict (cheap: no torch, no transformers)."""
    return json.loads((model_dir(path) / "config.json").read_text())


def hf_identity(path: str | Path) -> str:
    """``hf:<folder>:sha256=<digest>`` over the config and every weights file's digest."""
    folder = model_dir(path)
    weights = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    if not weights:
        raise WeightsError(f"{folder}: no weights file ({', '.join(WEIGHT_SUFFIXES)})")
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for file in weights:
        digest.update(f"{file.name}:{file_digest(file)}".encode())
    return f"hf:{folder.name}:sha256={digest.hexdigest()[:16]}"


def input_stats(path: str | Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std the model was trained with, from its preprocessor config, else ImageNet's."""
    folder = model_dir(path)
    for name in PREPROCESSOR_FILES:
        if (folder / name).is_file():
            cfg = json.loads((folder / name).read_text())
            if "image_mean" in cfg and "image_std" in cfg:
                return tuple(cfg["image_mean"]), tuple(cfg["image_std"])
    return IMAGENET_STATS


def load_hf_model(path: str | Path, device: torch.device) -> torch.nn.Module:
    """``AutoModel`` from the folder, offline, in eval mode on ``device``."""
    from transformers import AutoModel

    folder = model_dir(path)
    try:
        model = AutoModel.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{folder}: cannot load the transformers model ({exc})") from exc
    return model.eval().to(device)


def load_hf_extractor(path: str | Path):
    """``AutoFeatureExtractor`` from the folder (an audio model's spectrogram front end)."""
    from transformers import AutoFeatureExtractor

    folder = model_dir(path)
    try:
        return AutoFeatureExtractor.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{folder}: no usable feature extractor config ({exc})") from exc
