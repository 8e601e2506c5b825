"""Greedy k-center coreset selection for memory banks.

``approximate_greedy_coreset`` is PatchCore's sampler: distances are computed in a random
Johnson-Lindenstrauss projection (an untrained linear layer with PyTorch's default init) and the
running min-distance starts from the mean distance to a few random points instead of from one
seed point. ``greedy_coreset`` is the exact farthest-point traversal on the original features,
usable on small banks and as the reference in tests. Both return indices in selection order, so
any prefix is itself the greedy coreset of that size.

Why the approximate sampler is fast: one greedy step needs the distances from every point to the
point just picked. Computed one pick at a time that is a memory-bound (N, d') mat-vec. The next
picks are almost always among the points that are currently farthest from the selection, so the
distances to a batch of those candidates are computed together in one compute-bound matmul; each
step then costs an (N,) ``minimum`` and ``argmax`` as long as its pick is a candidate, and a new
batch is computed when it is not. The result is the exact greedy traversal of the projected
points (the same picks as a step-by-step loop up to float rounding in the dot products).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch

from iadbench.progress import Progress


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
    for step in Progress(range(n), desc="coreset", unit="pt", disable=None if progress else True):
        j = int(torch.argmax(min_sq))
        chosen[step] = j
        sq = torch.addmv(sq_norms, points, points[j], alpha=-2.0).add_(sq_norms[j])
        torch.minimum(min_sq, sq.clamp_min_(0), out=min_sq)
    return chosen


CANDIDATE_BATCH = 32
"""Candidates per matmul. 93-98 % of them end up picked (10 % coresets of the real bottle bank, a
synthetic look-alike and a random one), and larger batches are no faster per row on 2 CPU cores:
the whole 10 % of the real bottle bank took 22.5 / 23.6 / 26.5 / 29.0 s with 32 / 64 / 128 / 256.
"""

CANDIDATE_BYTES = 2**27
"""Cap on the (batch, N) float32 distance block, so huge banks shrink the batch instead."""


@contextmanager
def _threads(count: int):
    """Run torch's CPU ops on ``count`` threads, restoring the caller's setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _candidate_distances(
    points: torch.Tensor, sq_norms: torch.Tensor, min_sq: torch.Tensor, pick: int, out: torch.Tensor
) -> dict[int, int]:
    """Fill ``out`` with squared distances from the current farthest points to all points.

    The candidates are the top-``len(out)`` of ``min_sq``, always including ``pick`` (with tied
    maxima topk may hold others than argmax's). Returns candidate index -> row of ``out``.
    """
    wanted = torch.topk(min_sq, out.shape[0]).indices.tolist()
    if pick not in wanted:
        wanted[-1] = pick
    candidates = torch.tensor(wanted, device=points.device)
    torch.addmm(sq_norms, points[candidates], points.T, alpha=-2.0, out=out)
    out.add_(sq_norms[candidates, None]).clamp_min_(0)
    return {index: row for row, index in enumerate(wanted)}


def _batched_farthest_point_loop(
    points: torch.Tensor, min_dist: torch.Tensor, n: int, progress: bool
) -> torch.Tensor:
    """Greedy farthest-point picks, with distances to a batch of likely next picks per matmul.

    The batch is the current top-``CANDIDATE_BATCH`` of the running min-distance; its squared
    distances to all points come from one ``addmm`` on the caller's threads. Each step takes the
    argmax; when it is in the batch its precomputed row updates the minimum, otherwise a new batch
    (which contains it, being the top-1) is computed. Per-step work is two passes over an (N,)
    vector, run single-threaded: at that size a parallel region only adds synchronisation, which
    costs milliseconds per step when other jobs share the cores. Picked points are set to -inf
    so no index can be picked twice (rounding can leave a point's distance to itself above 0).
    """
    total = points.shape[0]
    sq_norms = (points * points).sum(1)
    min_sq = min_dist.square()
    batch = max(1, min(CANDIDATE_BATCH, total, CANDIDATE_BYTES // (4 * total)))
    block = torch.empty(batch, total, dtype=points.dtype, device=points.device)
    rows: dict[int, int] = {}
    on_cpu = points.device.type == "cpu"
    min_view = min_sq.numpy() if on_cpu else None
    gemm_threads = torch.get_num_threads()
    chosen = torch.empty(n, dtype=torch.long)
    with _threads(1 if on_cpu else gemm_threads):
        for step in Progress(
            range(n), desc="coreset", unit="pt", disable=None if progress else True
        ):
            j = int(min_view.argmax()) if on_cpu else int(torch.argmax(min_sq))
            row = rows.get(j)
            if row is None:
                with _threads(gemm_threads):
                    rows = _candidate_distances(points, sq_norms, min_sq, j, block)
                row = rows[j]
            chosen[step] = j
            torch.minimum(min_sq, block[row], out=min_sq)
            if on_cpu:
                min_view[j] = -math.inf
            else:
                min_sq[j] = -math.inf
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
    """PatchCore's approximate greedy coreset: ``n`` indices into ``features`` (N, D).

    Greedy k-center on a ``projection_dim``-d random projection (0: on the features themselves),
    with the running min-distance started at the mean distance to ``n_starts`` random points.
    Same seed, same indices. Fast because the distance updates are batched into matmuls over
    likely next picks (see the module docstring); the traversal itself is unchanged.
    """
    feats = _as_tensor(features).to(device)
    total = feats.shape[0]
    if not 0 < n <= total:
        raise ValueError(f"coreset size {n} must be in 1..{total}")
    points = random_projection(feats, projection_dim, seed) if projection_dim else feats
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randperm(total, generator=gen)[: min(n_starts, total)].to(points.device)
    min_dist = torch.cdist(points, points[starts]).mean(1)
    return _batched_farthest_point_loop(points, min_dist, n, progress)


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
