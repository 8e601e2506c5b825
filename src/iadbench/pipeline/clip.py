"""CLIP steps: cached visual views, window embeddings and sentence embeddings."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iadbench.errors import CacheError


def _rows(manifest: str | Path, category: str, split: str) -> pd.DataFrame:
    frame = pd.read_parquet(manifest)
    rows = frame[(frame["category"] == category) & (frame["split"] == split)]
    if rows.empty:
        raise CacheError(f"{manifest}: no {split} images for category {category!r}")
    return rows.reset_index(drop=True)


def make_visual(
    manifest: str | Path,
    category: str,
    split: str,
    backbone_cfg: Mapping[str, Any],
    geometry: Mapping[str, Any],
    view: str,
    out: str | Path,
    device: str = "auto",
) -> None:
    """CLS embeddings (+ patch tokens of the view's blocks) of one (category, split)."""
    from iadbench.clip.cache import save_arrays, visual_identity
    from iadbench.clip.outputs import encode_visual, image_batches, load_encoder, parse_view

    rows = _rows(manifest, category, split)
    encoder = load_encoder(backbone_cfg, device)
    token_path, blocks = parse_view(view)
    batches = image_batches(
        rows["image_path"].tolist(),
        geometry,
        encoder,
        int(backbone_cfg.get("batch_size", 16)),
        f"clip {backbone_cfg['model']} {category}/{split} {view}",
    )
    arrays = encode_visual(encoder, batches, token_path, blocks)
    meta = {
        "identity": visual_identity(backbone_cfg, geometry, f"visual-{view}"),
        "grid": list(encoder.grid),
        "blocks": list(blocks),
        "category": category,
        "split": split,
    }
    save_arrays(out, {"sample_id": rows["sample_id"].to_numpy(str), **arrays}, meta)


def make_windows(
    manifest: str | Path,
    category: str,
    split: str,
    backbone_cfg: Mapping[str, Any],
    geometry: Mapping[str, Any],
    sizes: str,
    out: str | Path,
    device: str = "auto",
) -> None:
    """WinCLIP window embeddings of one (category, split), one array per window side."""
    from iadbench.clip.cache import save_arrays, visual_identity
    from iadbench.clip.outputs import encode_window_sets, image_batches, load_encoder

    rows = _rows(manifest, category, split)
    encoder = load_encoder(backbone_cfg, device)
    sides = [int(s) for s in sizes.split("-")]
    batches = image_batches(
        rows["image_path"].tolist(),
        geometry,
        encoder,
        int(backbone_cfg.get("batch_size", 16)),
        f"windows {backbone_cfg['model']} {category}/{split} {sizes}",
    )
    arrays = encode_window_sets(encoder, batches, sides)
    meta = {
        "identity": visual_identity(backbone_cfg, geometry, f"windows-{sizes}"),
        "grid": list(encoder.grid),
        "category": category,
        "split": split,
    }
    save_arrays(out, {"sample_id": rows["sample_id"].to_numpy(str), **arrays}, meta)


def make_text(
    encoder_cfg: Mapping[str, Any],
    prompts: str | Mapping,
    class_name: str,
    out: str | Path,
    device: str = "auto",
) -> None:
    """Sentence embeddings (not normalised) of a prompt set filled with ``class_name``."""
    from iadbench.clip.cache import encoder_identity, save_arrays
    from iadbench.clip.outputs import load_encoder
    from iadbench.clip.prompts import sentences

    normal, anomalous = sentences(prompts, class_name)
    encoder = load_encoder(encoder_cfg, device)
    arrays = {
        "normal": encoder.encode_text(normal).float().cpu().numpy(),
        "anomalous": encoder.encode_text(anomalous).float().cpu().numpy(),
        "normal_sentences": np.array(normal),
        "anomalous_sentences": np.array(anomalous),
    }
    meta = {"identity": encoder_identity(encoder_cfg, visual=False), "class_name": class_name}
    save_arrays(out, arrays, meta)


def cached_outputs(
    files: Mapping[str, str],
    needs_inputs,
    backbone_cfg: Mapping[str, Any],
    geometry: Mapping[str, Any],
    sample_ids: list[str],
) -> dict[str, dict]:
    """The CLIP files a score job reads, checked against its config and put in ``sample_ids``
    order: ``{"visual": {...}, "windows": {...}, "text": {...}}`` (arrays plus ``meta``)."""
    from iadbench.clip.cache import encoder_identity, load_arrays, visual_identity

    out: dict[str, dict] = {}
    for key in ("visual", "windows"):
        if key not in needs_inputs:
            continue
        source = Path(files[key])
        what = source.stem  # "visual-<view>" or "windows-<sizes>"
        arrays, meta = load_arrays(source, visual_identity(backbone_cfg, geometry, what))
        stored = list(arrays.pop("sample_id"))
        if sorted(stored) != sorted(sample_ids):
            raise CacheError(f"{source}: its images are not the {len(sample_ids)} being scored")
        position = {s: i for i, s in enumerate(stored)}
        order = np.array([position[s] for s in sample_ids])
        out[key] = {**{k: v[order] for k, v in arrays.items()}, "meta": meta}
    if "text" in needs_inputs:
        arrays, meta = load_arrays(files["text"], encoder_identity(backbone_cfg, visual=False))
        out["text"] = {**arrays, "meta": meta}
    return out
