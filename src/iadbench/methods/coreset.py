"""Greedy k-center coreset selection for memory banks.

``approximate_greedy_coreset`` is PatchCore's sampler: distances are computed in a random
Johnson-Lindenstrauss projection (an untrained linear layer with PyTorch's default init) and the
running min-distance starts from the mean distance to a few random points instead of from one
seed point. ``greedy_coreset`` is the exact farthest-point traversal on the original features,
usable on small banks and as the reference in tests. Both return indices in selection order, so
any prefix is itself the greedy coreset of that size.
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm


def _as_tensor(features) -> torch.Tensor:
    tensor = torch.as_tensor(features)
    if tensor.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {tuple(tensor.shape)}")
    return tensor.float()


def random_projection(features: torch.Tensor, dim: int, seed: int) -> torch.Tensor:
    """Project (N, D) to (N, dim) with a seeded Kaiming-uniform matrix (nn.Linear's init)."""
    gen = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(features.shape[1])
    weight = (torch.rand(features.shape[1], dim, generator=gen) * 2 - 1) * bound
    return features @ weight.to(features.device)


def _farthest_point_loop(
    points: torch.Tensor, min_dist: torch.Tensor, n: int, progress: bool
) -> torch.Tensor:
    """Repeatedly take the point farthest from the selection, starting from ``min_dist``.

    Squared distances are tracked (same argmax, no square root per step): the loop is bound by
    one (N, D) mat-vec per selected point.
    """
    sq_norms = (points * points).sum(1)
    min_sq = min_dist.square()
    chosen = torch.empty(n, dtype=torch.long)
    for step in tqdm(range(n), desc="coreset", unit="pt", disable=None if progress else True):
        j = int(torch.argmax(min_sq))
        chosen[step] = j
        sq = torch.addmv(sq_norms, points, points[j], alpha=-2.0).add_(sq_norms[j])
        torch.minimum(min_sq, sq.clamp_min_(0), out=min_sq)
    return chosen


def approximate_greedy_coreset(
    features,
    n: int,
    projection_dim: int = 128,
    n_starts: int = 10,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> torch.Tensor:
    """PatchCore's approximate greedy coreset: ``n`` indices into ``features`` (N, D)."""
    feats = _as_tensor(features).to(device)
    total = feats.shape[0]
    if not 0 < n <= total:
        raise ValueError(f"coreset size {n} must be in 1..{total}")
    points = random_projection(feats, projection_dim, seed) if projection_dim else feats
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randperm(total, generator=gen)[: min(n_starts, total)].to(points.device)
    min_dist = torch.cdist(points, points[starts]).mean(1)
    return _farthest_point_loop(points, min_dist, n, progress)


def greedy_coreset(features, n: int, seed: int = 0, progress: bool = False) -> torch.Tensor:
    """Exact greedy k-center (farthest-point traversal) from one seeded random start."""
    points = _as_tensor(features)
    total = points.shape[0]
    if not 0 < n <= total:
        raise ValueError(f"coreset size {n} must be in 1..{total}")
    gen = torch.Generator().manual_seed(seed)
    first = int(torch.randint(total, (1,), generator=gen))
    min_dist = torch.cdist(points, points[first : first + 1]).squeeze(1)
    rest = _farthest_point_loop(points, min_dist, n - 1, progress) if n > 1 else torch.empty(0)
    return torch.cat([torch.tensor([first]), rest.long()])


def covering_radius(features, selected) -> float:
    """max over points of the distance to the nearest selected point."""
    points = _as_tensor(features)
    return float(torch.cdist(points, points[torch.as_tensor(selected)]).min(1).values.max())
