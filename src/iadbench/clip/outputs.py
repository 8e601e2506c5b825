"""From images to CLIP outputs: one path shared by the cached views and few-shot references.

Images go through the dataset's geometry (resize, centre crop), the encoder's own mean/std and,
inside the encoder, a resize to its input size — exactly as for every other backbone. The same
functions encode the cached test views and WinCLIP+'s reference images, so the two can never
drift apart.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from iadbench.backbones.loader import Preprocessing
from iadbench.clip.encoder import ClipEncoder, load_clip
from iadbench.clip.winclip import window_indices
from iadbench.data.images import Geometry, load_image
from iadbench.device import resolve_device
from iadbench.features.extract import normalise_images


def load_encoder(backbone_cfg: Mapping[str, Any], device: str = "auto") -> ClipEncoder:
    """The CLIP of a ``backbones:`` entry (model, weights, seed, input_size, interpolation)."""
    return load_clip(
        backbone_cfg["model"],
        str(backbone_cfg.get("weights", "pretrained")),
        input_size=backbone_cfg.get("input_size"),
        seed=int(backbone_cfg.get("seed", 0)),
        device=resolve_device(device),
        interpolation=backbone_cfg.get("interpolation", "bilinear"),
    )


def parse_view(view: str) -> tuple[str, tuple[int, ...]]:
    """``"ln_post-b3-b11"`` -> (``"ln_post"``, (3, 11)); ``"cls"``: the CLS embedding alone."""
    if view == "cls":
        return "projected", ()
    token_path, *blocks = view.split("-")
    return token_path, tuple(int(b.removeprefix("b")) for b in blocks)


def image_batches(
    paths: Sequence[str],
    geometry: Mapping[str, Any],
    encoder: ClipEncoder,
    batch_size: int,
    desc: str,
) -> Iterator[torch.Tensor]:
    """Normalised (B, 3, crop, crop) batches of ``paths``, decoded two at a time."""
    geo = Geometry.from_config(geometry)

    def load(path: str) -> np.ndarray:
        return geo.image(load_image(path))

    with (
        ThreadPoolExecutor(max_workers=2) as pool,
        tqdm(total=len(paths), desc=desc, unit="img", disable=None) as bar,
    ):
        for start in range(0, len(paths), batch_size):
            images = list(pool.map(load, paths[start : start + batch_size]))
            yield normalise_images(images, encoder.preprocessing)
            bar.update(len(images))


def encode_visual(
    encoder: ClipEncoder,
    batches: Iterator[torch.Tensor],
    token_path: str,
    blocks: Sequence[int],
) -> dict[str, np.ndarray]:
    """``cls`` (N, D) and, with blocks, ``tokens`` (N, T, h, w, D), float32."""
    cls, tokens = [], []
    for batch in batches:
        out = encoder.encode_image(batch, list(blocks), token_path)
        cls.append(out.cls.float().cpu())
        if out.patches:
            tokens.append(torch.stack(out.patches, dim=1).float().cpu())
    arrays = {"cls": torch.cat(cls).numpy()}
    if tokens:
        arrays["tokens"] = torch.cat(tokens).numpy()
    return arrays


def encode_window_sets(
    encoder: ClipEncoder, batches: Iterator[torch.Tensor], sizes: Sequence[int]
) -> dict[str, np.ndarray]:
    """``w<k>`` (N, n_k, D) per window side k: the projected CLS of each k x k window."""
    windows = {k: window_indices(encoder.grid, k) for k in sizes}
    parts: dict[int, list[torch.Tensor]] = {k: [] for k in sizes}
    for batch in batches:
        for k, index in windows.items():
            parts[k].append(encoder.encode_windows(batch, index).float().cpu())
    return {f"w{k}": torch.cat(parts[k]).numpy() for k in sizes}


def load_guide(
    dino_cfg: Mapping[str, Any], device: str = "auto"
) -> tuple[torch.nn.Module, Preprocessing]:
    """The whole DINOv2 (``model``, ``weights``, ``seed``) guiding Crane's D-Attn (eval mode)."""
    from iadbench.backbones.loader import build_model
    from iadbench.backbones.registry import spec_for
    from iadbench.backbones.weights import resolve_weights

    spec = spec_for(dino_cfg["model"])
    weights = resolve_weights(str(dino_cfg["weights"]), spec)
    model, preprocessing = build_model(spec, weights, int(dino_cfg["seed"]))
    return model.to(resolve_device(device)), preprocessing


def encode_crane(
    encoder: ClipEncoder,
    batches: Iterator[torch.Tensor],
    options: Mapping[str, Any],
    guide: tuple[torch.nn.Module, Preprocessing] | None = None,
) -> tuple[dict[str, np.ndarray], list[list]]:
    """Crane's refined path (``options``: a crane view's, see ``CraneParams.visual_view``).

    Returns ``cls`` (N, D) and ``tokens`` (N, T, h, w, D), float32, and the ``[block, "eattn" |
    "dattn"]`` source of each of the T grids. ``guide`` (the DINOv2 of ``options["dino"]``) gets
    each batch renormalised from the CLIP's mean/std to its own.
    """
    from iadbench.clip.crane import crane_tokens, dino_patch_tokens, renormalize
    from iadbench.clip.resclip import Rcs

    rcs, dino = options["rcs"], options["dino"]
    if (guide is None) != (dino is None):
        raise ValueError("a DINOv2 guide is needed exactly when the options name one")
    cls, tokens, sources = [], [], []
    for batch in batches:
        guidance, extra = None, {}
        if guide is not None:
            model, own = guide
            clip = encoder.preprocessing
            moved = batch.to(next(model.parameters()).device)
            guidance = dino_patch_tokens(
                model, renormalize(moved, clip.mean, clip.std, own.mean, own.std)
            )
            extra = {"beta": dino["beta"], "gamma": dino["gamma"]}
        out = crane_tokens(
            encoder,
            batch,
            taps=options["taps"],
            eattn_from=options["eattn_from"],
            attn_type=options["attn_type"],
            dino=guidance,
            rcs=None if rcs is None else Rcs(rcs["lam"], rcs["tau"], tuple(rcs["layers"])),
            **extra,
        )
        cls.append(out.cls.float().cpu())
        tokens.append(torch.stack(out.patches, dim=1).float().cpu())
        sources = [list(s) for s in out.sources]
    arrays = {"cls": torch.cat(cls).numpy(), "tokens": torch.cat(tokens).numpy()}
    return arrays, sources
