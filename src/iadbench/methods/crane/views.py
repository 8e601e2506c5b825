"""Crane's cached visual view: the refined path's tokens at the taps, computed once per
(dataset, category, split, options) by the ``clip_visual`` rule and read by every Crane entry
with the same visual options (:meth:`~iadbench.methods.crane.params.CraneParams.visual_view`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from iadbench.backbones.loader import Preprocessing
from iadbench.clip.encoder import ClipEncoder
from iadbench.device import resolve_device
from iadbench.methods.crane.rcs import Rcs
from iadbench.methods.crane.refined import crane_tokens, dino_patch_tokens, renormalize


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
    """Crane's refined path (``options``: a crane view's, see :meth:`CraneParams.visual_view`).

    Returns ``cls`` (N, D) and ``tokens`` (N, T, h, w, D), float32, and the ``[block, "eattn" |
    "dattn"]`` source of each of the T grids. ``guide`` (the DINOv2 of ``options["dino"]``) gets
    each batch renormalised from the CLIP's mean/std to its own.
    """
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
            extra = {"beta": dino["beta"], "gamma": dino["gamma"], "dattn_input": dino["input"]}
        out = crane_tokens(
            encoder,
            batch,
            taps=options["taps"],
            eattn_from=options["eattn_from"],
            attn_type=options["attn_type"],
            dino=guidance,
            rcs=None
            if rcs is None
            else Rcs(rcs["lam"], rcs["tau"], tuple(rcs["layers"]), rcs["scale_by_terms"]),
            **extra,
        )
        cls.append(out.cls.float().cpu())
        tokens.append(torch.stack(out.patches, dim=1).float().cpu())
        sources = [list(s) for s in out.sources]
    arrays = {"cls": torch.cat(cls).numpy(), "tokens": torch.cat(tokens).numpy()}
    return arrays, sources
