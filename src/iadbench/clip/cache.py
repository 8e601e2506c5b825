"""Cached CLIP outputs: visual views, window embeddings and sentence embeddings as ``.npz``.

Each file holds its arrays, the ``sample_id`` order (visual and windows) and a JSON ``meta``
with the identity of what produced it (model, weights digest, input size, geometry, view). A
reader passes the identity it expects; a file made with anything else is refused, never served,
so a stale cache cannot leak into a result. Files are written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from iadbench.errors import CacheError
from iadbench.features.store import config_hash
from iadbench.io import atomic_path

FORMAT_VERSION = 1


def encoder_identity(backbone_cfg: Mapping[str, Any], visual: bool = True) -> dict:
    """What a CLIP backbone entry's outputs depend on; text ignores the visual options."""
    from iadbench.backbones.registry import spec_for
    from iadbench.backbones.weights import resolve_weights

    spec = spec_for(backbone_cfg["model"])
    weights = resolve_weights(str(backbone_cfg.get("weights", "pretrained")), spec)
    identity = {
        "format": FORMAT_VERSION,
        "model": backbone_cfg["model"],
        "library_name": spec.library_name,
        "weights": weights.identity,
        "seed": int(backbone_cfg.get("seed", 0)) if weights.kind == "random" else None,
    }
    if visual:
        identity["input_size"] = backbone_cfg.get("input_size")
        identity["interpolation"] = backbone_cfg.get("interpolation", "bilinear")
        # only when not the default, so caches written before the switch existed stay valid
        resample = backbone_cfg.get("resample", "bilinear")
        if resample != "bilinear":
            identity["resample"] = resample
    return identity


def visual_identity(
    backbone_cfg: Mapping[str, Any], geometry: Mapping[str, Any], what: str
) -> dict:
    """Identity of a visual view or window file: encoder, evaluation geometry and ``what``."""
    return {
        **encoder_identity(backbone_cfg),
        "resize": int(geometry["resize"]),
        "crop": int(geometry["crop"]),
        "what": what,
    }


def view_identity(
    backbone_cfg: Mapping[str, Any],
    geometry: Mapping[str, Any],
    what: str,
    options: Mapping[str, Any] | None = None,
) -> dict:
    """Identity of a visual view; a kind's own view (Crane's) adds its resolved ``options`` and
    the resolved weights of the guidance backbone they name (``options["dino"]``)."""
    identity = visual_identity(backbone_cfg, geometry, what)
    if options is None:
        return identity
    dino = options.get("dino")
    guide = None if dino is None else encoder_identity(dino, visual=False)
    return {**identity, "options": dict(options), "guide": guide}


def noisy_identity(backbone_cfg: Mapping[str, Any], samples: int, sigma: float, seed: int) -> dict:
    """Identity of cached noisy text prototypes: the text encoder and the draw (R, σ, seed)."""
    draw = {"samples": int(samples), "sigma": float(sigma), "seed": int(seed)}
    return {**encoder_identity(backbone_cfg, visual=False), "bayes": draw}


def save_arrays(target: str | Path, arrays: Mapping[str, np.ndarray], meta: dict) -> None:
    """Arrays + meta (with its hash) into one ``.npz``, atomically."""
    payload = {**meta, "hash": config_hash(meta.get("identity", meta))}
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(json.dumps(payload, default=str)), **arrays)


def load_arrays(source: str | Path, expect: dict | None = None) -> tuple[dict, dict]:
    """(arrays, meta) of a cached file; refused unless made with identity ``expect``."""
    source = Path(source)
    try:
        with np.load(source, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != "meta"}
            meta = json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise CacheError(f"{source}: unreadable CLIP cache file ({exc})") from exc
    if expect is not None and meta.get("hash") != config_hash(expect):
        raise CacheError(
            f"{source}: made with {meta.get('identity')}, expected {expect}; refusing to reuse "
            "it (delete the file to recompute)"
        )
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise CacheError(f"{source}: array {name!r} contains NaN/Inf")
    return arrays, meta
