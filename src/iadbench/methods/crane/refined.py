"""Crane's training-free dense path on an open_clip ViT (METHODS §4.1, §12.1), as tensor functions.

From block ``eattn_from`` on, a second ("refined") residual stream runs beside the model's own:
each block adds E-Attn, ``Σ_terms softmax(x xᵀ·s) V -> out_proj``, computed, as in DPAM and
Crane, from ``ln_1`` of the *original* stream's input, and skips the FFN. The original stream is
the unmodified model and gives the CLS embedding. Projected refined tokens (``ln_post @ proj``)
at the taps are scored against (2, D) text prototypes; optional D-Attn adds, at each tap, tokens
whose attention comes from DINOv2 patch affinities; optional RCS (:mod:`.rcs`) replaces the
final block's refined attention.

Everything that METHODS leaves open is an argument whose default is the spec's; docstrings say
which; defaults that are parameters are the parameters' (:mod:`.params`). Blocks are 0-based,
negatives count from the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from iadbench.backbones.registry import resolve_block
from iadbench.clip.encoder import ClipEncoder
from iadbench.clip.scoring import anomaly_probability, upsample
from iadbench.errors import ConfigError
from iadbench.methods.crane.params import (
    ATTN_TERMS,
    DATTN_BETA,
    DATTN_GAMMA,
    DATTN_INPUTS,
    IMAGE_SCORE_MODES,
    SIGMA,
    TEMPERATURE,
    default_eattn_from,
    rcs_layers,
)
from iadbench.methods.crane.rcs import Rcs, mean_attention, rcs_attention

DATTN_GRIDS = ("dino", "clip")
POOL_WEIGHT = 0.5  # Crane's score-based pooling: g = normalize(0.5·g_local + 0.5·CLS)


# --- indices and options -------------------------------------------------------------------------


def attn_terms(attn_type: str) -> tuple[str, ...]:
    """``"qq+kk+vv"`` or any '+'-joined subset -> its terms in canonical (q, k, v) order."""
    terms = attn_type.split("+")
    if any(t not in ATTN_TERMS for t in terms) or len(set(terms)) != len(terms):
        raise ConfigError(
            f"attn_type {attn_type!r}: '+'-joined distinct terms out of {', '.join(ATTN_TERMS)}"
        )
    return tuple(t for t in ATTN_TERMS if t in terms)


# --- attention pieces ----------------------------------------------------------------------------


def project_qkv(
    attn: torch.nn.MultiheadAttention, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, N, W) normed tokens -> q, k, v of shape (B, heads, N, W / heads), as ``attn`` does."""
    if attn.in_proj_weight is None:
        raise ConfigError("attention with separate q/k/v projections is not supported")
    b, n, _ = x.shape
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)
    return qkv.reshape(b, n, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)


def self_correlation(x: torch.Tensor) -> torch.Tensor:
    """``softmax(x xᵀ · d_h^-0.5)`` over the last dim, per head: (B, H, N, d) -> (B, H, N, N)."""
    return (x @ x.transpose(-2, -1) * x.shape[-1] ** -0.5).softmax(dim=-1)


def standard_attention(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``softmax(q kᵀ · d_h^-0.5)``: the weights the model's own attention uses."""
    return (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(dim=-1)


def eattn_weights(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, terms: Sequence[str]
) -> torch.Tensor:
    """E-Attn's ``W_E``: the *sum* (not the mean, METHODS §4.1) of the chosen terms' weights."""
    by_term = {"qq": q, "kk": k, "vv": v}
    return sum(self_correlation(by_term[t]) for t in terms)


def attend(
    attn: torch.nn.MultiheadAttention, weights: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """(B, H, N, M) weights applied to (B, H, M, d) values, heads merged, then ``out_proj``."""
    out = weights @ v
    return attn.out_proj(out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1))


def resize_grid(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(..., h, w, C) -> (..., h', w', C), bilinear (``align_corners=False``); same grid: as is."""
    if tuple(x.shape[-3:-1]) == tuple(grid):
        return x
    lead, (h, w, c) = x.shape[:-3], x.shape[-3:]
    flat = x.reshape(-1, h, w, c).permute(0, 3, 1, 2)
    out = F.interpolate(flat, size=tuple(grid), mode="bilinear", align_corners=False)
    return out.permute(0, 2, 3, 1).reshape(*lead, *grid, c)


# --- D-Attn --------------------------------------------------------------------------------------


def dattn_weights(
    dino: torch.Tensor, beta: float = DATTN_BETA, gamma: float = DATTN_GAMMA
) -> torch.Tensor:
    """(B, h', w', C) DINO patch features -> (B, N', N') D-Attn weights (METHODS §4.1 steps 2-3).

    ``S = ẐẐᵀ`` (unit features), ``S' = γ·(S − β·mean(S))``, entries with ``S' < 0`` masked,
    row softmax. Ambiguous: mean(S) is taken per image over all of its entries (Crane's code
    takes one mean over the whole batch, which makes an image's map depend on its batch). A row
    with every entry masked, which happens only when even its largest entry S_ii = 1 falls below
    β·mean(S) (an image of near-identical patches), keeps only its diagonal instead of turning
    into NaN.
    """
    z = F.normalize(dino.flatten(1, 2), dim=-1)
    s = z @ z.transpose(1, 2)
    s = gamma * (s - beta * s.mean(dim=(1, 2), keepdim=True))
    keep = s >= 0
    empty = ~keep.any(dim=-1, keepdim=True)
    keep = keep | (empty & torch.eye(s.shape[-1], dtype=torch.bool, device=s.device))
    return s.masked_fill(~keep, float("-inf")).softmax(dim=-1)


def dattn_tokens(
    attn: torch.nn.MultiheadAttention,
    normed: torch.Tensor,
    grid: tuple[int, int],
    weights: torch.Tensor,
    dino_grid: tuple[int, int],
) -> torch.Tensor:
    """D-Attn output (B, h', w', W): ``softmax(S') V -> out_proj``, with the block's own V.

    ``normed`` is ``ln_1`` of the block input, CLS first; V drops the CLS and is resized
    (bilinear) from the CLIP ``grid`` to the DINO grid, one (B, N', N') weight for all heads.
    No residual is added: METHODS passes the output straight to ``ln_post @ proj``.
    """
    _, _, v = project_qkv(attn, normed)
    b, heads, _, d = v.shape
    v = resize_grid(v[:, :, 1:].reshape(b, heads, *grid, d), dino_grid).flatten(2, 3)
    out = attend(attn, weights[:, None], v)
    return out.reshape(b, *dino_grid, -1)


def renormalize(
    batch: torch.Tensor,
    mean_from: Sequence[float],
    std_from: Sequence[float],
    mean_to: Sequence[float],
    std_to: Sequence[float],
) -> torch.Tensor:
    """A (B, 3, H, W) batch normalised with one mean/std, normalised with another instead.

    D-Attn feeds DINOv2 "the same image with ImageNet normalisation" (METHODS §4.1).
    """

    def col(values: Sequence[float]) -> torch.Tensor:
        return torch.as_tensor(values, dtype=batch.dtype, device=batch.device)[:, None, None]

    return (batch * col(std_from) + col(mean_from) - col(mean_to)) / col(std_to)


@torch.no_grad()
def dino_patch_tokens(
    model: torch.nn.Module, batch: torch.Tensor, norm: bool = True
) -> torch.Tensor:
    """(B, h', w', C) last-block patch tokens of a timm ViT (DINOv2), prefix tokens dropped.

    ``norm`` applies the model's final norm, as DINOv2's ``get_intermediate_layers`` does by
    default. The batch must already carry the model's own normalisation; it is resized
    (bilinear, antialiased) to the model's input size when it differs.
    """
    size = tuple(model.patch_embed.img_size)
    if tuple(batch.shape[-2:]) != size:
        batch = F.interpolate(
            batch, size=size, mode="bilinear", align_corners=False, antialias=True
        )
    (tokens,) = model.forward_intermediates(
        batch, indices=[len(model.blocks) - 1], norm=norm, intermediates_only=True
    )
    return tokens.permute(0, 2, 3, 1)


# --- the dual path -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CraneTokens:
    """One batch's Crane outputs: the image embedding and every token grid the map averages."""

    cls: torch.Tensor  # (B, D): ln_post(CLS) @ proj of the original path (the model's own)
    patches: tuple[torch.Tensor, ...]  # (B, h, w, D) projected tokens, all on one grid
    sources: tuple[tuple[int, str], ...]  # per entry of ``patches``: (block, "eattn" | "dattn")


@torch.no_grad()
def crane_tokens(
    encoder: ClipEncoder,
    batch: torch.Tensor,
    taps: Sequence[int] | str | None = None,
    eattn_from: int | None = None,
    attn_type: str = "qq+kk+vv",
    dino: torch.Tensor | None = None,
    beta: float = DATTN_BETA,
    gamma: float = DATTN_GAMMA,
    dattn_with_eattn: bool = True,
    dattn_grid: str = "dino",
    rcs: Rcs | None = None,
    dattn_input: str = "block",
) -> CraneTokens:
    """Run the original and refined paths over a normalised (B, 3, H, W) batch.

    ``taps``: blocks whose refined tokens are read (``encoder.resolve_blocks``; default: the
    registry's, Crane's 6/12/18/24 of ViT-L). A tap before ``eattn_from`` reads the original
    path, which the refined one equals there. ``eattn_from`` (default ``depth * 5 // 24``,
    Crane's code: the last 19 of 24 blocks, from block 5) may be >= depth: no refined
    block, the plain model. ``dino`` (B, h', w', C) switches D-Attn on at every tap (Crane+ uses
    only the last tap; pass ``taps=[-1]``); with ``dattn_with_eattn`` the E-Attn tokens are kept
    beside the D-Attn ones (Crane's ``both_eattn_dattn``). ``dattn_grid``: ``dino`` follows
    METHODS (V and the E-Attn tokens resized to the DINO grid), ``clip`` resizes the DINO
    features to the CLIP grid instead; equal grids make both the same. ``dattn_input``: D-Attn's
    V comes from ``ln_1`` of the original stream entering the tap block (``block``, METHODS
    §4.1) or after that block's attention residual, before its FFN (``attention``: what Crane's
    code reads at taps after ``eattn_from``, since its block updates the stream it was given in
    place before the tap reads it). ``rcs`` replaces the final block's refined attention
    (:mod:`.rcs`, ``A_c`` weighted by the number of E-Attn terms unless ``rcs.scale_by_terms``
    is false); A_c averages the original path's standard attention in ``rcs.layers`` (None:
    ResCLIP's 5-8 of 12 scaled to the depth).
    """
    if dattn_grid not in DATTN_GRIDS:
        raise ConfigError(f"dattn_grid {dattn_grid!r} is not one of {DATTN_GRIDS}")
    if dattn_input not in DATTN_INPUTS:
        raise ConfigError(f"dattn_input {dattn_input!r} is not one of {DATTN_INPUTS}")
    v = encoder.visual
    blocks = v.transformer.resblocks
    depth = len(blocks)
    taps = encoder.resolve_blocks(taps)
    start = (
        default_eattn_from(depth)
        if eattn_from is None
        else resolve_block(eattn_from, depth, "eattn_from", beyond=True)
    )
    terms = attn_terms(attn_type)
    cross_layers: set[int] = set()
    if rcs is not None:
        if start > depth - 1:
            raise ConfigError("RCS replaces the final refined block, but eattn_from starts none")
        given = rcs_layers(depth) if rcs.layers is None else rcs.layers
        cross_layers = {resolve_block(i, depth, "RCS layer") for i in given}
    grid = encoder.grid
    out_grid, affinity = grid, None
    if dino is not None:
        if dattn_grid == "clip":
            dino = resize_grid(dino, grid)
        out_grid = tuple(dino.shape[1:3])
        affinity = dattn_weights(dino.to(encoder.device, torch.float32), beta, gamma)

    x = v.ln_pre(v.patch_dropout(encoder._embedded(batch)))
    refined, cross, patches, sources = None, [], [], []
    for i, block in enumerate(blocks):
        if not isinstance(getattr(block, "attn", None), torch.nn.MultiheadAttention):
            raise ConfigError(f"block {i} has no nn.MultiheadAttention; Crane cannot run on it")
        dattn_here = affinity is not None and i in taps
        if i >= start or i in cross_layers or dattn_here:
            normed = block.ln_1(x)
            q, k, val = project_qkv(block.attn, normed)
        if i in cross_layers:
            cross.append(standard_attention(q, k))
        if dattn_here:
            source = normed
            if dattn_input == "attention":
                mid = x + block.ls_1(attend(block.attn, standard_attention(q, k), val))
                source = block.ln_1(mid)
            tokens = dattn_tokens(block.attn, source, grid, affinity.to(val.dtype), out_grid)
            patches.append(encoder._project(tokens))
            sources.append((i, "dattn"))
        if i >= start:
            weights = eattn_weights(q, k, val, terms)
            if rcs is not None and i == depth - 1:
                n_terms = len(terms) if rcs.scale_by_terms else 1
                weights = rcs_attention(weights, mean_attention(cross), rcs.lam, rcs.tau, n_terms)
            refined = (x if refined is None else refined) + block.ls_1(
                attend(block.attn, weights, val)
            )
        x = encoder.run_block(block, x)
        if i in taps and (not dattn_here or dattn_with_eattn):
            stream = x if refined is None else refined
            tokens = resize_grid(stream[:, 1:].reshape(x.shape[0], *grid, -1), out_grid)
            patches.append(encoder._project(tokens))
            sources.append((i, "eattn"))
    return CraneTokens(encoder._project(x[:, 0]), tuple(patches), tuple(sources))


# --- maps and scores -----------------------------------------------------------------------------


def patch_map(
    patches: Sequence[torch.Tensor],
    prototypes: torch.Tensor,
    temperature: float = TEMPERATURE,
    soft_mean: bool = True,
) -> torch.Tensor:
    """(B, h, w) anomaly probability on the patch grid from every tap's (B, h, w, D) tokens.

    ``soft_mean`` (METHODS §12: per-tap two-class softmax, mean over taps) or, otherwise,
    the softmax of the tap-averaged logits (Crane's other mode).
    """
    if not patches:
        raise ValueError("no tap tokens to score")
    if soft_mean:
        return torch.stack([anomaly_probability(p, prototypes, temperature) for p in patches]).mean(
            0
        )
    return _mean_logits(patches, prototypes, temperature).softmax(dim=-1)[..., 1]


def _mean_logits(
    patches: Sequence[torch.Tensor], prototypes: torch.Tensor, temperature: float
) -> torch.Tensor:
    """(B, h, w, 2): the taps' mean of cos(token, prototype) / temperature."""
    protos = F.normalize(prototypes, dim=-1)
    logits = [F.normalize(p, dim=-1) @ protos.T / temperature for p in patches]
    return torch.stack(logits).mean(0)


def smooth_maps(maps: torch.Tensor, size: tuple[int, int], sigma: float = SIGMA) -> torch.Tensor:
    """(B, h, w) -> (B, H, W): bilinear upsampling, then ``scipy.ndimage.gaussian_filter``.

    scipy (on the CPU, ``mode='reflect'``, truncate 4), as the official code and PatchCore here
    do; each map is blurred on its own. ``sigma = 0`` skips the blur.
    """
    return blur(upsample(maps, size), sigma)


def blur(full: torch.Tensor, sigma: float = SIGMA) -> torch.Tensor:
    """(B, H, W) maps, each blurred on its own by ``scipy.ndimage.gaussian_filter``; 0 = as is."""
    if sigma <= 0:
        return full
    array = full.detach().cpu().float().numpy()
    blurred = gaussian_filter(array, sigma=(0.0, sigma, sigma))
    return torch.from_numpy(np.ascontiguousarray(blurred)).to(full.device, full.dtype)


def pooled_embedding(
    cls: torch.Tensor,
    patches: Sequence[torch.Tensor],
    prototypes: torch.Tensor,
    temperature: float = TEMPERATURE,
    weight: float = POOL_WEIGHT,
) -> torch.Tensor:
    """Crane's score-based pooling (METHODS §4.1): (B, D) unit image embedding.

    ``P = softmax(mean_taps logits)[abn]`` weighs the taps' mean unit token; ``g_local`` is the
    unit sum over patches; ``g = normalize(weight·g_local + (1 − weight)·normalize(CLS))``.
    """
    mean_tokens = torch.stack([F.normalize(p, dim=-1) for p in patches]).mean(0)
    weights = _mean_logits(patches, prototypes, temperature).softmax(dim=-1)[..., 1:]
    local = F.normalize((mean_tokens * weights).sum(dim=(1, 2)), dim=-1)
    return F.normalize(weight * local + (1.0 - weight) * F.normalize(cls, dim=-1), dim=-1)


def image_scores(
    mode: str,
    outputs: CraneTokens,
    prototypes: torch.Tensor,
    maps: torch.Tensor,
    temperature: float = TEMPERATURE,
) -> torch.Tensor:
    """(B,) image scores per ``image_score_mode`` (METHODS §12.1).

    ``map_max``: the max of the final (upsampled, smoothed) map; ambiguous, §12 says only "max
    of the map", and the final map is what PatchCore's ``map_max`` here also takes. ``cls``: the
    two-class softmax of the original path's CLS. ``pooled``: that of Crane's pooled embedding,
    at τ = 0.07 (Crane's test value).
    """
    if mode == "map_max":
        return maps.amax(dim=(-2, -1))
    if mode == "cls":
        return anomaly_probability(outputs.cls, prototypes, temperature)
    if mode == "pooled":
        pooled = pooled_embedding(outputs.cls, outputs.patches, prototypes, temperature)
        return anomaly_probability(pooled, prototypes, temperature)
    raise ConfigError(f"image_score_mode {mode!r} is not one of {IMAGE_SCORE_MODES}")


def crane_scores(
    outputs: CraneTokens,
    prototypes: torch.Tensor,
    size: tuple[int, int],
    image_score_mode: str = "map_max",
    temperature: float = TEMPERATURE,
    sigma: float = SIGMA,
    soft_mean: bool = True,
    upsample_logits: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image scores (B,) and (B, H, W) maps in [0, 1] from one set of (2, D) prototypes.

    Only this part depends on the text, so Bayes sampling reruns it per sample on the same
    visual tokens. ``upsample_logits`` (with ``soft_mean`` false only): the taps' mean two-class
    logits are upsampled before the softmax, as Crane's ``test.py`` does; otherwise the
    probability map is upsampled from the patch grid. With ``soft_mean`` both orders agree
    (upsampling is linear), so the flag changes nothing there.
    """
    if image_score_mode not in IMAGE_SCORE_MODES:
        raise ConfigError(
            f"image_score_mode {image_score_mode!r} is not one of {IMAGE_SCORE_MODES}"
        )
    if upsample_logits and not soft_mean:
        logits = _mean_logits(outputs.patches, prototypes, temperature).permute(0, 3, 1, 2)
        full = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
        maps = blur(full.softmax(dim=1)[:, 1], sigma)
    else:
        grid_map = patch_map(outputs.patches, prototypes, temperature, soft_mean)
        maps = smooth_maps(grid_map, size, sigma)
    return image_scores(image_score_mode, outputs, prototypes, maps, temperature), maps
