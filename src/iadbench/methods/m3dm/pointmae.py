"""A Point-MAE-style point transformer (the encoder M3DM's point branch runs), in plain torch.

Farthest point sampling picks ``num_group`` centres (starting, as pointnet2's CUDA sampler
does, from point 0), each centre's ``group_size`` nearest points form a group expressed relative
to it, a mini-PointNet embeds each group, and ``depth`` pre-norm blocks with the centres'
positional embedding added before every block run over the groups; the outputs of the ``taps``
blocks, each through the final LayerNorm, are concatenated. Module and parameter names follow
Point-MAE's ``MAE_encoder`` (``encoder.first_conv``, ``pos_embed``, ``blocks.blocks.<i>``,
``norm``), so its pretrained checkpoint loads with the prefixes stripped
(:func:`load_checkpoint`). Random weights are PyTorch's default initialisation, as in M3DM,
which builds the encoder without an init pass.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from iadbench.errors import ConfigError

# Point-MAE checkpoints hold the encoder under these prefixes (DDP's "module.", the MAE's
# "MAE_encoder." or a fine-tuned model's "base_model.").
PREFIXES = ("module.", "MAE_encoder.", "base_model.")


def farthest_point_sample(points: torch.Tensor, count: int) -> torch.Tensor:
    """Indices (count,) of a greedy farthest-point traversal of (N, 3) points from point 0.

    Each step takes the point whose squared distance to the chosen set is largest (the first
    such index on ties), as pointnet2's ``furthest_point_sample`` does.
    """
    n = points.shape[0]
    if not 0 < count <= n:
        raise ValueError(f"cannot sample {count} of {n} points")
    chosen = torch.zeros(count, dtype=torch.long, device=points.device)
    nearest = torch.full((n,), float("inf"), device=points.device, dtype=points.dtype)
    last = 0
    for i in range(1, count):
        nearest = torch.minimum(nearest, ((points - points[last]) ** 2).sum(1))
        last = int(torch.argmax(nearest))
        chosen[i] = last
    return chosen


def knn_groups(points: torch.Tensor, centres: torch.Tensor, k: int, chunk: int = 256):
    """Indices (G, k) of each centre's k nearest points (nearest first) and the groups
    (G, k, 3) relative to their centre."""
    idx = []
    for start in range(0, len(centres), chunk):
        d = torch.cdist(centres[start : start + chunk], points)
        idx.append(torch.topk(d, k, dim=1, largest=False, sorted=True).indices)
    index = torch.cat(idx)
    return index, points[index] - centres[:, None, :]


def interpolate_features(
    points: torch.Tensor, centres: torch.Tensor, features: torch.Tensor, chunk: int = 4096
) -> torch.Tensor:
    """(N, C) features at every point: inverse squared-distance weights of its 3 nearest
    centres (pointnet2's ``interpolating_points``, 1e-8 added to the squared distance)."""
    out = []
    for start in range(0, len(points), chunk):
        d2 = torch.cdist(points[start : start + chunk], centres) ** 2
        d2, idx = torch.topk(d2, min(3, len(centres)), dim=1, largest=False, sorted=True)
        weight = 1.0 / (d2 + 1e-8)
        weight = weight / weight.sum(1, keepdim=True)
        out.append((features[idx] * weight[..., None]).sum(1))
    return torch.cat(out)


class MiniPointNet(nn.Module):
    """Per group: shared MLP 3→128→256, max-pooled global feature concatenated to each point,
    MLP 512→512→``dim``, max-pooled: one ``dim`` token per group."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.first_conv = nn.Sequential(
            nn.Conv1d(3, 128, 1), nn.BatchNorm1d(128), nn.ReLU(inplace=True), nn.Conv1d(128, 256, 1)
        )
        self.second_conv = nn.Sequential(
            nn.Conv1d(512, 512, 1),
            nn.BatchNorm1d(512),
            nn.ReLU(inplace=True),
            nn.Conv1d(512, dim, 1),
        )

    def forward(self, groups: torch.Tensor) -> torch.Tensor:  # (G, k, 3) -> (G, dim)
        feature = self.first_conv(groups.transpose(1, 2))
        pooled = feature.max(dim=2, keepdim=True).values
        feature = torch.cat([pooled.expand(-1, -1, feature.shape[2]), feature], dim=1)
        return self.second_conv(feature).max(dim=2).values


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Blocks(nn.Module):
    """Holds ``blocks`` under Point-MAE's name (``blocks.blocks.<i>``)."""

    def __init__(self, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))


class PointTransformer(nn.Module):
    """(N, 3) points -> (G, len(taps)·dim) group features and the (G, 3) centres."""

    def __init__(
        self, num_group: int, group_size: int, dim: int, depth: int, heads: int, taps
    ) -> None:
        super().__init__()
        self.num_group, self.group_size, self.taps = num_group, group_size, tuple(taps)
        self.encoder = MiniPointNet(dim)
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        self.blocks = Blocks(dim, depth, heads)
        self.norm = nn.LayerNorm(dim)

    @torch.no_grad()
    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        centres = points[farthest_point_sample(points, self.num_group)]
        _, groups = knn_groups(points, centres, self.group_size)
        x = self.encoder(groups)[None]
        pos = self.pos_embed(centres)[None]
        outs = []
        for i, block in enumerate(self.blocks.blocks):
            x = block(x + pos)
            if i in self.taps:
                outs.append(self.norm(x)[0])
        return torch.cat(outs, dim=1), centres


def point_patches(
    net: PointTransformer, points: torch.Tensor, size: int, grid: int
) -> torch.Tensor:
    """M3DM's point feature alignment: group features interpolated to every point of the
    ``size``×``size`` cloud, laid on its grid, 3×3 average (stride 1), adaptive average to
    ``grid``×``grid``: (grid², C) patch features in row-major order."""
    features, centres = net(points)
    dense = interpolate_features(points, centres, features)  # (size², C)
    image = dense.T.reshape(1, -1, size, size)
    pooled = F.adaptive_avg_pool2d(F.avg_pool2d(image, 3, stride=1), grid)
    return pooled[0].flatten(1).T.contiguous()


def load_checkpoint(net: PointTransformer, path: str | Path) -> None:
    """Load a Point-MAE checkpoint (``{"base_model": state}`` or a bare state dict).

    Prefixes in :data:`PREFIXES` are stripped; keys of the MAE's decoder and heads are not the
    encoder's and are dropped. Every encoder parameter must be present with its shape, else the
    error names the file and the keys (a checkpoint of another width or depth).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"m3dm weights: {path} is not a file")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state = ckpt.get("base_model", ckpt.get("model", ckpt)) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ConfigError(f"m3dm weights: {path} holds no state dict")
    stripped = {}
    for key, value in state.items():
        for prefix in PREFIXES:
            key = key.removeprefix(prefix)
        stripped[key] = value
    own = net.state_dict()
    missing = sorted(k for k in own if k not in stripped)
    if missing:
        raise ConfigError(
            f"m3dm weights: {path} lacks {len(missing)} encoder key(s), e.g. {missing[:5]} "
            "(is it a Point-MAE checkpoint of this trans_dim/depth?)"
        )
    shapes = [k for k in own if tuple(stripped[k].shape) != tuple(own[k].shape)]
    if shapes:
        k = shapes[0]
        raise ConfigError(
            f"m3dm weights: {path}: {k} has shape {tuple(stripped[k].shape)}, the encoder "
            f"{tuple(own[k].shape)} ({len(shapes)} key(s) differ; check trans_dim, depth, heads)"
        )
    net.load_state_dict({k: stripped[k] for k in own})
