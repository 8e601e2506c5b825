"""Dinomaly's network and formulas (METHODS §5.2): a frozen DINOv2-reg encoder, a noisy MLP
bottleneck, linear-attention decoder blocks, loose group reconstruction, the hard-mining loss.

Plain ``nn.Module``s and functions, tensors in and out; :mod:`.method` handles files, images,
training and devices. Written from the paper's description and its public code (read, not
copied); where anomalib 2.7.0 differs, the switch is named (``mlp_bias``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def default_taps(depth: int) -> tuple[int, ...]:
    """The paper's encoder taps: blocks 2..9 of a 12-block ViT (S, B), 4, 6, ..., 18 of a
    24-block one (L); other depths (the tiny test ViT keeps 12) have no published choice."""
    if depth == 12:
        return (2, 3, 4, 5, 6, 7, 8, 9)
    if depth == 24:
        return (4, 6, 8, 10, 12, 14, 16, 18)
    raise ValueError(f"no default Dinomaly taps for a {depth}-block encoder; set taps:")


class LinearAttention(nn.Module):
    """Softmax-free attention with ``φ(x) = ELU(x) + 1``:
    ``out_s = Σ_t φ(q_s)·φ(k_t) v_t / Σ_t φ(q_s)·φ(k_t)``, computed as ``φ(Q)(φ(K)ᵀV)`` so it is
    linear in the token count. It cannot focus sharply, which keeps the decoder from copying
    anomalous tokens through (the paper's argument for it)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k = F.elu(q) + 1.0, F.elu(k) + 1.0
        kv = k.transpose(-2, -1) @ v  # (b, h, d, d)
        norm = q @ k.sum(dim=-2, keepdim=True).transpose(-2, -1)  # (b, h, n, 1)
        out = (q @ kv) / norm
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """Linear -> GELU -> Linear with one dropout rate after the activation and on the output,
    and (``input_dropout``: the noisy bottleneck) on the input too."""

    def __init__(
        self, dim: int, hidden: int, dropout: float, bias: bool, input_dropout: bool = False
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim, bias=bias)
        self.drop = nn.Dropout(dropout)
        self.input_dropout = input_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_dropout:
            x = self.drop(x)
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DecoderBlock(nn.Module):
    """Pre-norm ViT block (LayerNorm eps 1e-8) with :class:`LinearAttention` and an MLP 4x."""

    def __init__(self, dim: int, heads: int, mlp_bias: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-8)
        self.attn = LinearAttention(dim, heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-8)
        self.mlp = Mlp(dim, 4 * dim, 0.0, mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Dinomaly(nn.Module):
    """Encoder taps -> mean -> noisy bottleneck -> decoder blocks; groups of taps vs groups of
    (reversed) decoder outputs, each a (B, C, h, w) map without the class/register tokens.

    ``encoder`` is a timm VisionTransformer (frozen, always in eval mode); only ``bottleneck``
    and ``decoder`` train and are saved (:meth:`trainable_state`).
    """

    def __init__(
        self,
        encoder: nn.Module,
        taps: Sequence[int],
        groups: Sequence[Sequence[int]],
        decoder_depth: int = 8,
        dropout: float = 0.2,
        mlp_bias: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = encoder.eval().requires_grad_(False)
        self.taps = tuple(int(t) for t in taps)
        self.groups = tuple(tuple(int(i) for i in g) for g in groups)
        if max(i for g in self.groups for i in g) >= min(len(self.taps), decoder_depth):
            raise ValueError(
                f"groups {self.groups} index beyond {len(self.taps)} taps / "
                f"{decoder_depth} decoder blocks"
            )
        dim, heads = encoder.embed_dim, encoder.blocks[0].attn.num_heads
        self.patch = encoder.patch_embed.patch_size[0]
        self.prefix = encoder.num_prefix_tokens  # class + register tokens
        self.bottleneck = Mlp(dim, 4 * dim, dropout, mlp_bias, input_dropout=True)
        self.decoder = nn.ModuleList(
            DecoderBlock(dim, heads, mlp_bias) for _ in range(decoder_depth)
        )
        for module in [self.bottleneck, *self.decoder.modules()]:
            if isinstance(module, nn.Linear):  # the paper's init: trunc_normal(0.01, ±0.03)
                nn.init.trunc_normal_(module.weight, std=0.01, a=-0.03, b=0.03)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def train(self, mode: bool = True) -> Dinomaly:
        super().train(mode)
        self.encoder.eval()  # frozen: its dropout/drop-path never switch on
        return self

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Bottleneck and decoder weights (the encoder comes from its registry weights)."""
        return {
            k: v.detach().cpu().clone()
            for k, v in self.state_dict().items()
            if not k.startswith("encoder.")
        }

    def load_trainable(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("encoder.")]
        if missing or unexpected:
            raise KeyError(
                f"decoder weights do not fit: missing {missing}, unexpected {unexpected}"
            )

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Patch embedding + position embedding (resampled to the image's grid, bicubic without
        antialiasing as DINOv2's own code and anomalib do; timm's default antialiases) + the
        class and register tokens: the input of the first block."""
        from iadbench.backbones.loader import POS_EMBED_RESAMPLING, pos_embed_resampled

        enc = self.encoder
        x = enc.patch_embed(images)  # (B, h, w, C): the ViT is built with dynamic_img_size
        x = pos_embed_resampled(enc, x, *POS_EMBED_RESAMPLING["bicubic"])
        return enc.norm_pre(enc.patch_drop(x))

    def encode(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The tapped blocks' raw outputs (B, prefix + h*w, C), prompt tokens included."""
        enc = self.encoder
        with torch.no_grad():
            x = self.tokens(images)
            out = []
            for i, block in enumerate(enc.blocks[: max(self.taps) + 1]):
                x = block(x)
                if i in self.taps:
                    out.append(x)
        return out

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        h, w = images.shape[-2] // self.patch, images.shape[-1] // self.patch
        taps = self.encode(images)
        x = self.bottleneck(torch.stack(taps, dim=1).mean(dim=1))
        outs = []
        for block in self.decoder:
            x = block(x)
            outs.append(x)
        outs = outs[::-1]

        def grid(tokens: list[torch.Tensor], group: Sequence[int]) -> torch.Tensor:
            mean = torch.stack([tokens[i] for i in group], dim=1).mean(dim=1)[:, self.prefix :]
            return mean.transpose(1, 2).reshape(mean.shape[0], -1, h, w).contiguous()

        return [grid(taps, g) for g in self.groups], [grid(outs, g) for g in self.groups]


def p_at(iteration: int, p_final: float = 0.9, ramp: int = 1000) -> float:
    """Share of easy points whose gradient is damped at 0-based ``iteration``:
    ``min(p_final * it / ramp, p_final)``."""
    return min(p_final * iteration / ramp, p_final) if ramp > 0 else p_final


def hard_mining_loss(
    encoded: Sequence[torch.Tensor], decoded: Sequence[torch.Tensor], p: float, factor: float
) -> torch.Tensor:
    """``global_cosine_hm_percent``: mean over groups of the batch-mean ``1 - cos`` between whole
    flattened maps; a backward hook multiplies by ``factor`` the gradient of every point whose
    own ``1 - cos`` is below the k-th largest (k = ``int(N (1 - p))``, at least 1) of the group's
    N = B*h*w points, so the decoder stops polishing what it already reconstructs."""
    total = encoded[0].new_zeros(())
    for enc, dec in zip(encoded, decoded, strict=True):
        enc = enc.detach()
        with torch.no_grad():
            dist = 1 - F.cosine_similarity(enc, dec, dim=1).unsqueeze(1)  # (B, 1, h, w)
            k = max(1, int(dist.numel() * (1 - p)))
            easy = dist < torch.topk(dist.flatten(), k).values[-1]
        flat = 1 - F.cosine_similarity(enc.flatten(1), dec.flatten(1), dim=1)
        total = total + flat.mean()
        if dec.requires_grad:
            dec.register_hook(lambda grad, easy=easy: torch.where(easy, grad * factor, grad))
    return total / len(encoded)


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """Normalised (size, size) Gaussian, the 5x5 sigma-4 kernel Dinomaly smooths maps with."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g).float()


def anomaly_maps(
    encoded: Sequence[torch.Tensor],
    decoded: Sequence[torch.Tensor],
    image_size: int,
    eval_size: int,
    kernel: torch.Tensor,
    max_ratio: float,
    padding: str = "zeros",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores (B,), maps (B, eval_size, eval_size)): the mean over groups of ``1 - cos``
    upsampled to ``image_size`` (bilinear, align_corners), resized to ``eval_size`` (bilinear),
    smoothed with ``kernel`` (``padding`` zeros or reflect at the border); score = mean of the
    top ``max_ratio`` of the map's values (0: the max)."""
    maps = []
    for enc, dec in zip(encoded, decoded, strict=True):
        m = (1 - F.cosine_similarity(enc, dec, dim=1)).unsqueeze(1)
        maps.append(F.interpolate(m, size=image_size, mode="bilinear", align_corners=True))
    amap = torch.cat(maps, dim=1).mean(dim=1, keepdim=True)
    amap = F.interpolate(amap, size=eval_size, mode="bilinear", align_corners=False)
    pad = kernel.shape[-1] // 2
    if padding == "reflect":
        amap = F.conv2d(F.pad(amap, (pad,) * 4, mode="reflect"), kernel.to(amap)[None, None])[:, 0]
    else:
        amap = F.conv2d(amap, kernel.to(amap)[None, None], padding=pad)[:, 0]
    flat = amap.flatten(1)
    if max_ratio == 0:
        return flat.max(dim=1).values, amap
    k = max(1, int(flat.shape[1] * max_ratio))
    return flat.topk(k, dim=1).values.mean(dim=1), amap


def lr_at(iteration: int, total: int, base: float, final: float, warmup: int) -> float:
    """WarmCosine: ``linspace(0, base, warmup)[it]`` during warm-up, then cosine from ``base``
    to ``final`` over the remaining ``total - warmup`` iterations."""
    if iteration < warmup:
        return base * iteration / (warmup - 1) if warmup > 1 else 0.0
    span = total - warmup
    t = (iteration - warmup) / span if span > 0 else 0.0
    return final + 0.5 * (base - final) * (1 + math.cos(math.pi * t))
