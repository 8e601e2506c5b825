"""CLIP steps: cached visual views, frozen streams, window embeddings and sentence embeddings."""

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


def _encoder_and_batches(manifest, category, split, backbone_cfg, geometry, device, what):
    """The category's rows of one split, its CLIP encoder and the image batches to feed it."""
    from iadbench.clip.outputs import image_batches, load_encoder

    rows = _rows(manifest, category, split)
    encoder = load_encoder(backbone_cfg, device)
    batches = image_batches(
        rows["image_path"].tolist(),
        geometry,
        encoder,
        int(backbone_cfg.get("batch_size", 16)),
        f"{what} {backbone_cfg['model']} {category}/{split}",
    )
    return rows, encoder, batches


def make_visual(
    manifest: str | Path,
    category: str,
    split: str,
    backbone_cfg: Mapping[str, Any],
    geometry: Mapping[str, Any],
    view: str,
    out: str | Path,
    device: str = "auto",
    options: Mapping[str, Any] | None = None,
) -> None:
    """CLS embeddings (+ patch tokens of the view's blocks) of one (category, split).

    A Crane view (``crane-<hash>``) comes with its resolved ``options`` and holds the refined
    path's projected tokens at the taps instead (:func:`iadbench.methods.crane.views.encode_crane`).
    """
    from iadbench.clip.cache import save_arrays, view_identity
    from iadbench.clip.outputs import encode_visual, parse_view
    from iadbench.methods.crane.params import crane_view_name
    from iadbench.methods.crane.views import encode_crane, load_guide

    if options is not None and view != crane_view_name(options):
        raise CacheError(f"view {view!r} is not that of the options {dict(options)}")
    rows, encoder, batches = _encoder_and_batches(
        manifest, category, split, backbone_cfg, geometry, device, f"visual-{view}"
    )
    meta = {
        "identity": view_identity(backbone_cfg, geometry, f"visual-{view}", options),
        "category": category,
        "split": split,
    }
    if options is None:
        token_path, blocks = parse_view(view)
        arrays = encode_visual(encoder, batches, token_path, blocks)
        meta.update(grid=list(encoder.grid), blocks=list(blocks))
    else:
        guide = None if options["dino"] is None else load_guide(options["dino"], device)
        arrays, sources = encode_crane(encoder, batches, options, guide)
        meta.update(grid=list(arrays["tokens"].shape[2:4]), sources=sources)
    save_arrays(out, {"sample_id": rows["sample_id"].to_numpy(str), **arrays}, meta)


def make_frozen(
    manifest: str | Path,
    category: str,
    split: str,
    backbone_cfg: Mapping[str, Any],
    geometry: Mapping[str, Any],
    view: str,
    tokens_out: str | Path,
    meta_out: str | Path,
    device: str = "auto",
) -> None:
    """The frozen residual stream (``raw-b<k>-...``) of one (category, split) that trained
    CLIP heads start from (:mod:`iadbench.clip.frozen`)."""
    from iadbench.clip.frozen import frozen_identity, write_frozen
    from iadbench.clip.outputs import parse_view

    token_path, blocks = parse_view(view)
    if token_path != "raw" or not blocks:
        raise CacheError(f"a frozen stream is a raw view with blocks, not {view!r}")
    rows, encoder, batches = _encoder_and_batches(
        manifest, category, split, backbone_cfg, geometry, device, f"frozen-{view}"
    )
    meta = {
        "identity": frozen_identity(backbone_cfg, geometry, view),
        "grid": list(encoder.grid),
        "category": category,
        "split": split,
    }
    ids = rows["sample_id"].astype(str).tolist()
    write_frozen(encoder, batches, blocks, ids, tokens_out, meta_out, meta)


def cached_frozen(
    tokens: str | Path, meta: str | Path, backbone_cfg: Mapping[str, Any], geometry: Mapping
):
    """A train job's cached frozen stream, checked against its backbone and geometry."""
    from iadbench.clip.frozen import frozen_identity, open_frozen

    view = Path(meta).stem.removeprefix("frozen-")
    return open_frozen(tokens, meta, frozen_identity(backbone_cfg, geometry, view))


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
    from iadbench.methods.winclip.windows import encode_window_sets

    rows, encoder, batches = _encoder_and_batches(
        manifest, category, split, backbone_cfg, geometry, device, f"windows-{sizes}"
    )
    arrays = encode_window_sets(encoder, batches, [int(s) for s in sizes.split("-")])
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


def make_noisy_text(
    encoder_cfg: Mapping[str, Any],
    prompts: str | Mapping,
    class_name: str,
    samples: int,
    sigma: float,
    seed: int,
    out: str | Path,
    device: str = "auto",
) -> None:
    """R noisy prototype pairs (R, 2, D) of a prompt set filled with ``class_name``: the Bayes
    path's text side (:func:`iadbench.methods.crane.bayes.noisy_prototypes`, unit sentences
    averaged)."""
    from iadbench.clip.cache import noisy_identity, save_arrays
    from iadbench.clip.outputs import load_encoder
    from iadbench.clip.prompts import sentences
    from iadbench.methods.crane.bayes import noisy_prototypes

    if not sigma > 0 or samples < 2:
        raise CacheError(
            f"noisy prototypes need sigma > 0 and >= 2 samples, not {sigma}, {samples}"
        )
    normal, anomalous = sentences(prompts, class_name)
    encoder = load_encoder(encoder_cfg, device)
    draws = noisy_prototypes(encoder, normal, anomalous, samples, sigma, seed, normalize_each=True)
    arrays = {
        "prototypes": draws.float().cpu().numpy(),
        "normal_sentences": np.array(normal),
        "anomalous_sentences": np.array(anomalous),
    }
    meta = {"identity": noisy_identity(encoder_cfg, samples, sigma, seed), "class_name": class_name}
    save_arrays(out, arrays, meta)


def cached_outputs(
    files: Mapping[str, str],
    needs_inputs,
    backbone_cfg: Mapping[str, Any],
    geometry: Mapping[str, Any],
    sample_ids: list[str],
    view_options: Mapping[str, Any] | None = None,
    noisy_text: tuple[int, float, int] | None = None,
) -> dict[str, dict]:
    """The CLIP files a score job reads, checked against its config and put in ``sample_ids``
    order: ``{"visual": {...}, "windows": {...}, "text": {...}}`` (arrays plus ``meta``).

    ``view_options``: those of a kind's own visual view (Crane's); ``noisy_text``: the draw
    ``(R, σ, seed)`` of ``files["noisy_text"]``, read as ``"noisy_text"``.
    """
    from iadbench.clip.cache import encoder_identity, load_arrays, noisy_identity, view_identity

    out: dict[str, dict] = {}
    for key in ("visual", "windows"):
        if key not in needs_inputs:
            continue
        source = Path(files[key])
        what = source.stem  # "visual-<view>" or "windows-<sizes>"
        options = view_options if key == "visual" else None
        arrays, meta = load_arrays(source, view_identity(backbone_cfg, geometry, what, options))
        stored = list(arrays.pop("sample_id"))
        if sorted(stored) != sorted(sample_ids):
            raise CacheError(f"{source}: its images are not the {len(sample_ids)} being scored")
        position = {s: i for i, s in enumerate(stored)}
        order = np.array([position[s] for s in sample_ids])
        out[key] = {**{k: v[order] for k, v in arrays.items()}, "meta": meta}
    if "text" in needs_inputs:
        arrays, meta = load_arrays(files["text"], encoder_identity(backbone_cfg, visual=False))
        out["text"] = {**arrays, "meta": meta}
    if noisy_text is not None:
        expect = noisy_identity(backbone_cfg, *noisy_text)
        arrays, meta = load_arrays(files["noisy_text"], expect)
        out["noisy_text"] = {**arrays, "meta": meta}
    return out
