"""Approximate greedy coreset: today's baseline against the library version, speed and quality.

python benchmarks/bench_coreset.py [--bank bottle|random|both] [--rows N] [--dim D]
    [--fraction 0.1] [--runs 3] [--threads T] [--features train.npy]

Banks (``--rows``/``--dim`` override the sizes):

* ``bottle``: 214,000 x 152, a synthetic stand-in for MVTec AD bottle's Lite0 patch features
  (see ``bottle_like``), or the real features given with ``--features`` (any (..., D) .npy,
  float16 is fine; ``--rows`` then takes the first rows).
* ``random``: 157,000 x 1536 standard-normal features (a WideResNet50-sized bank).

For each bank it prints the minimum over ``--runs`` runs (baseline and new alternate, so drift
hits both) of the baseline and of the library function, the speed-up, and the covering radius of
both selections -- max over all patches of the distance, in the full feature space, to the
nearest selected patch -- and their ratio. Prints only, asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import torch

from iadbench.methods.coreset import approximate_greedy_coreset, random_projection

BANKS = {"bottle": (214_000, 152), "random": (157_000, 1536)}


# --- BASELINE: today's approximate_greedy_coreset (before the batched loop), same arithmetic,
# --- without the progress bar and argument checks. Used only for the before/after comparison.


def baseline_farthest_point_loop(points: torch.Tensor, min_dist: torch.Tensor, n: int):
    """Baseline: one (N, d') mat-vec, clamp and minimum per selected point."""
    sq_norms = (points * points).sum(1)
    min_sq = min_dist.square()
    chosen = torch.empty(n, dtype=torch.long)
    for step in range(n):
        j = int(torch.argmax(min_sq))
        chosen[step] = j
        sq = torch.addmv(sq_norms, points, points[j], alpha=-2.0).add_(sq_norms[j])
        torch.minimum(min_sq, sq.clamp_min_(0), out=min_sq)
    return chosen


def baseline_approximate_greedy_coreset(
    features, n: int, projection_dim: int = 128, n_starts: int = 10, seed: int = 0
) -> torch.Tensor:
    """Baseline: today's sampler (same projection and start as the library version)."""
    feats = torch.as_tensor(features).float()
    total = feats.shape[0]
    points = random_projection(feats, projection_dim, seed) if projection_dim else feats
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randperm(total, generator=gen)[: min(n_starts, total)]
    min_dist = torch.cdist(points, points[starts]).mean(1)
    return baseline_farthest_point_loop(points, min_dist, n)


# --- banks and the quality measure ---


def bottle_like(rows: int, dim: int, seed: int = 0, clusters: int = 300) -> np.ndarray:
    """Synthetic stand-in for Lite0 patch features of one MVTec AD category.

    A mixture of ``clusters`` Gaussians with Dirichlet-distributed sizes. Cluster centres come
    from a Gaussian with a decaying spectrum (std of the i-th axis ~ i^-0.7) around an offset;
    every cluster has its own random orientation and a decaying spectrum (std ~ i^-0.7), i.e.
    anisotropic spread. Scales match the real bottle features (164k x 152, real in brackets):
    mean norm 40 (43), distance to the mean 57 (54), median pair distance 77 (79), median
    nearest-neighbour distance in a 1/65 subsample 11.2 (11.4, 1/50), 76 % (86 %) of the
    variance in 10 axes.
    """
    rng = np.random.default_rng(seed)
    axes = np.arange(1, dim + 1, dtype=np.float64)
    basis = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    offset = rng.normal(size=dim)
    offset *= 40.0 / np.linalg.norm(offset)
    centre_std = axes**-0.7
    centre_std *= 58.0 / np.linalg.norm(centre_std)
    centres = offset + (rng.normal(size=(clusters, dim)) * centre_std) @ basis.T
    local_std = axes**-0.7
    local_std *= 12.0 / np.linalg.norm(local_std)
    sizes = rng.multinomial(rows, rng.dirichlet(np.ones(clusters)))
    out = np.empty((rows, dim), dtype=np.float32)
    start = 0
    for centre, size in zip(centres, sizes):
        rotation = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
        local = (rng.normal(size=(size, dim)) * local_std) @ rotation.T
        out[start : start + size] = centre + local
        start += size
    return out[rng.permutation(rows)]


def make_bank(name: str, rows: int, dim: int, features: str | None) -> tuple[np.ndarray, str]:
    """The bank's features (float32) and a line saying what they are."""
    if name == "bottle" and features:
        loaded = np.load(features, mmap_mode="r")
        real = np.ascontiguousarray(loaded.reshape(-1, loaded.shape[-1])[:rows], dtype=np.float32)
        return real, f"real features {features} {real.shape[0]} x {real.shape[1]}"
    if name == "bottle":
        return bottle_like(rows, dim), f"bottle-like synthetic {rows} x {dim}"
    gen = torch.Generator().manual_seed(0)
    return torch.randn(rows, dim, generator=gen).numpy(), f"random normal {rows} x {dim}"


def covering_radii(features: np.ndarray, selections: list[torch.Tensor], chunk: int = 4096):
    """Covering radius of each selection in the full feature space, by chunked matmuls.

    Distances to the union of the selections are computed once per chunk of patches; each
    selection then takes its own columns' minimum (squared distances clamped at 0).
    """
    feats = torch.from_numpy(features)
    union, inverse = torch.unique(torch.cat(selections), return_inverse=True)
    masks = []
    start = 0
    for sel in selections:
        mask = torch.zeros(len(union), dtype=torch.bool)
        mask[inverse[start : start + len(sel)]] = True
        masks.append(~mask)
        start += len(sel)
    centres = feats[union]
    centre_sq = (centres * centres).sum(1)
    worst = [0.0] * len(selections)
    for lo in range(0, feats.shape[0], chunk):
        block = feats[lo : lo + chunk]
        d2 = torch.addmm(centre_sq, block, centres.T, alpha=-2.0)
        d2.add_((block * block).sum(1, keepdim=True))
        for k, outside in enumerate(masks):
            nearest = d2.masked_fill(outside, math.inf).min(1).values.max()
            worst[k] = max(worst[k], float(nearest))
    return [math.sqrt(max(w, 0.0)) for w in worst]


def timed(fn) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def bench_bank(name: str, args: argparse.Namespace) -> None:
    rows, dim = BANKS[name]
    rows = args.rows or rows
    dim = args.dim or dim
    feats, what = make_bank(name, rows, dim, args.features)
    n = max(1, int(round(args.fraction * feats.shape[0])))
    print(f"\n[{name}] {what}; coreset {n} ({args.fraction:g}), projection 128, 10 starts")
    base_times, new_times = [], []
    base_sel = new_sel = None
    for run in range(args.runs):
        t_base, base_sel = timed(lambda: baseline_approximate_greedy_coreset(feats, n))
        t_new, new_sel = timed(lambda: approximate_greedy_coreset(feats, n, progress=False))
        base_times.append(t_base)
        new_times.append(t_new)
        print(f"  run {run + 1}: baseline {t_base:8.2f} s   new {t_new:7.2f} s", flush=True)
    base, new = min(base_times), min(new_times)
    print(f"  baseline (min of {args.runs}) {base:8.2f} s")
    print(f"  new      (min of {args.runs}) {new:8.2f} s   speed-up {base / new:.2f}x")
    same = int(torch.isin(new_sel, base_sel).sum())
    print(f"  same indices in order: {torch.equal(base_sel, new_sel)}; shared {same} of {n}")
    r_base, r_new = covering_radii(feats, [base_sel, new_sel])
    print(f"  covering radius baseline {r_base:.4f}  new {r_new:.4f}  ratio {r_new / r_base:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bank", choices=["bottle", "random", "both"], default="both")
    parser.add_argument("--rows", type=int, help="patches (default: 214,000 / 157,000)")
    parser.add_argument("--dim", type=int, help="feature dimension (default: 152 / 1536)")
    parser.add_argument("--fraction", type=float, default=0.1, help="coreset fraction")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each, min reported")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--features", help="real (..., D) .npy features for the bottle bank")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}")
    print(f"load average at start: {os.getloadavg()}")
    for name in ["bottle", "random"] if args.bank == "both" else [args.bank]:
        bench_bank(name, args)
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
