"""Embedding step: one frozen encoder over one (dataset, category, split) of a weld manifest."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from iadbench.errors import CacheError

log = logging.getLogger(__name__)

MEDIA_COLUMN = {
    "video": "video_path",
    "audio": "audio_path",
    "sensor": "sensor_path",
    "photo": "photo_paths",
}


def _encoder(cfg, rows: pd.DataFrame, device):
    """The modality's encoder, built once for the split."""
    from iadbench.features import encode_signals, encode_vision

    if cfg.modality == "video":
        return encode_vision.VideoEncoder(cfg, rows, device)
    if cfg.modality == "photo":
        return encode_vision.PhotoEncoder(cfg, device)
    if cfg.modality == "sensor":
        return encode_signals.SensorEncoder(cfg)
    if cfg.hf:
        return encode_signals.HfAudio(cfg, rows, device)
    return encode_signals.SpectralAudio(cfg, rows)


def embed(
    manifest_path: str | Path,
    dataset_cfg: dict,
    encoder_name: str,
    encoder_cfg: dict,
    backbones_cfg: dict,
    category: str,
    split: str,
    out_npy: str | Path,
    out_parquet: str | Path,
    device: str = "auto",
) -> dict:
    """Encode every run of (category, split) into the embedding store; return its metadata."""
    from iadbench.device import resolve_device
    from iadbench.features.embeddings import INDEX_COLUMNS, save_embeddings
    from iadbench.features.modalities import EncoderConfig
    from iadbench.features.store import config_hash
    from iadbench.progress import Progress

    cfg = EncoderConfig.from_config(encoder_cfg, backbones_cfg, dataset_cfg)
    frame = pd.read_parquet(manifest_path)
    column = MEDIA_COLUMN[cfg.modality]
    if column not in frame.columns:
        raise CacheError(f"{manifest_path}: no {column} column; is it a weld manifest?")
    rows = frame[(frame["category"] == category) & (frame["split"] == split)]
    rows = rows.reset_index(drop=True)
    if rows.empty:
        raise CacheError(f"{manifest_path}: no {split} runs for category {category!r}")
    identity = cfg.identity()
    dev = resolve_device(device)
    encoder = _encoder(cfg, rows, dev)
    sequences, records = [], []
    offset = 0
    desc = f"embed {encoder_name} {category}/{split}"
    with Progress(total=len(rows), desc=desc, unit="run", disable=None) as bar:
        for _, row in rows.iterrows():
            for view, item in enumerate(encoder.encode(row)):
                length = len(item.tokens)
                records.append(
                    {
                        "sample_id": row["sample_id"],
                        "label": np.int8(row["label"]),
                        "defect_type": row["defect_type"],
                        "split": row["split"],
                        "view": view,
                        "offset": offset,
                        "length": length,
                        "grid_h": item.grid[0],
                        "grid_w": item.grid[1],
                    }
                )
                sequences.append(item.tokens)
                offset += length
            bar.update()
    dims = {s.shape[1] for s in sequences if len(s)}
    if len(dims) != 1:
        raise CacheError(f"{encoder_name} {category}/{split}: token widths {sorted(dims)}")
    dim = dims.pop()
    tokens = np.concatenate([s.reshape(-1, dim) for s in sequences])
    if not np.isfinite(tokens).all() or np.abs(tokens).max() > np.finfo(np.float16).max:
        raise CacheError(f"{encoder_name} produced NaN/Inf or fp16-overflowing tokens")
    meta = {
        **encoder.meta(),
        "encoder": encoder_name,
        "modality": cfg.modality,
        "dim": int(dim),
        "config_hash": config_hash(identity),
        "identity": identity,
        "category": category,
        "split": split,
        "device": dev.type,
    }
    index = pd.DataFrame(records, columns=INDEX_COLUMNS)
    save_embeddings(out_npy, out_parquet, tokens, index, meta)
    log.info(
        "%s %s/%s: %s tokens, %d runs -> %s",
        encoder_name,
        category,
        split,
        tokens.shape,
        len(rows),
        out_npy,
    )
    return meta


def cached_embeddings(
    npy: str | Path,
    parquet: str | Path,
    encoder_cfg: dict,
    backbones_cfg: dict,
    dataset_cfg: dict,
):
    """An embedding store, refused unless it was computed with this exact encoder config."""
    from iadbench.features.embeddings import load_embeddings
    from iadbench.features.modalities import EncoderConfig

    expected = EncoderConfig.from_config(encoder_cfg, backbones_cfg, dataset_cfg).hash()
    return load_embeddings(npy, parquet, expected_hash=expected)
