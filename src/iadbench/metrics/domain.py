"""Distances between two categories' training features, to relate cross-domain AUROC drops.

All three take two samples of feature vectors, arrays ``(n, d)`` and ``(m, d)``, and are
symmetric in them. They answer "how far apart are the normal data of two domains": a model
fitted on one and tested on the other should lose more the farther apart the domains are.

- :func:`mmd_rbf`: the *biased* (V-statistic) MMD² with a Gaussian kernel. Biased because it
  is the squared distance between the two empirical mean embeddings, hence never negative and
  exactly 0 for identical samples; its O(1/n) bias is the same for every pair when all pairs are
  subsampled to the same size, so rankings across pairs are unaffected.
- :func:`sliced_wasserstein`: Wasserstein-1 averaged over random 1-D projections.
- :func:`cosine_distance_of_means`: ``1 - cos`` of the two mean vectors; cheap, scale-free.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import wasserstein_distance

DEFAULT_MAX_SAMPLES = 1000


def _as_pair(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Both samples as float64 (n, d) with the same d and at least one row, finite."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    for name, arr in (("x", a), ("y", b)):
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty (n, d) array, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} holds NaN or Inf")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: x has {a.shape[1]}, y has {b.shape[1]}")
    return a, b


def _squared_distances(a: np.ndarray) -> np.ndarray:
    """All pairwise squared Euclidean distances of the rows of ``a`` (clipped at 0)."""
    sq = np.einsum("ij,ij->i", a, a)
    return np.maximum(sq[:, None] + sq[None, :] - 2.0 * (a @ a.T), 0.0)


def median_bandwidth(x: ArrayLike, y: ArrayLike) -> float:
    """Median heuristic: the median pairwise distance in the pooled sample (1.0 if all equal)."""
    a, b = _as_pair(x, y)
    return _median_of(_squared_distances(np.vstack([a, b])))


def _median_of(d2: np.ndarray) -> float:
    upper = d2[np.triu_indices(d2.shape[0], k=1)]
    median = float(np.sqrt(np.median(upper))) if upper.size else 0.0
    # Every point equal: any bandwidth gives MMD 0; 1.0 keeps the kernel well defined.
    return median if median > 0 else 1.0


def mmd_rbf(x: ArrayLike, y: ArrayLike, bandwidth: float | None = None) -> float:
    """Biased MMD² with ``k(a, b) = exp(-|a - b|² / (2 σ²))``; σ by the median heuristic if None."""
    a, b = _as_pair(x, y)
    d2 = _squared_distances(np.vstack([a, b]))
    return _mmd(d2, a.shape[0], _median_of(d2) if bandwidth is None else float(bandwidth))


def _mmd(d2: np.ndarray, n: int, sigma: float) -> float:
    """MMD² from the pooled squared distances, the first ``n`` rows being sample x."""
    if sigma <= 0:
        raise ValueError(f"bandwidth must be positive, got {sigma}")
    k = np.exp(-d2 / (2.0 * sigma**2))
    value = k[:n, :n].mean() + k[n:, n:].mean() - 2.0 * k[:n, n:].mean()
    return float(max(value, 0.0))


def sliced_wasserstein(
    x: ArrayLike, y: ArrayLike, n_projections: int = 128, seed: int = 0
) -> float:
    """Mean 1-D Wasserstein-1 distance of the samples projected on random unit directions."""
    a, b = _as_pair(x, y)
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    directions = np.random.default_rng(seed).standard_normal((a.shape[1], n_projections))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    pa, pb = a @ directions, b @ directions
    return float(np.mean([wasserstein_distance(pa[:, i], pb[:, i]) for i in range(n_projections)]))


def cosine_distance_of_means(x: ArrayLike, y: ArrayLike) -> float:
    """``1 - cos(mean x, mean y)``, in [0, 2]; undefined (ValueError) for a zero mean."""
    a, b = _as_pair(x, y)
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    na, nb = np.linalg.norm(ma), np.linalg.norm(mb)
    if na == 0 or nb == 0:
        raise ValueError("cosine distance is undefined: a sample has a zero mean vector")
    return float(1.0 - np.clip(ma @ mb / (na * nb), -1.0, 1.0))


def subsample(a: ArrayLike, max_samples: int, seed: int) -> np.ndarray:
    """At most ``max_samples`` rows, drawn without replacement by a generator seeded per call.

    A fresh generator per array makes the draw depend only on (seed, n), so swapping the two
    samples of a pair swaps their subsamples and the distances stay symmetric.
    """
    arr = np.asarray(a)
    if max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    if arr.shape[0] <= max_samples:
        return arr
    rows = np.random.default_rng(seed).choice(arr.shape[0], size=max_samples, replace=False)
    return arr[np.sort(rows)]


def domain_distances(
    x: ArrayLike,
    y: ArrayLike,
    seed: int = 0,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    bandwidth: float | None = None,
    n_projections: int = 128,
) -> dict[str, float]:
    """``mmd`` (biased MMD², RBF), ``wasserstein`` (sliced W1), ``cosine`` and the σ used.

    Both samples are first subsampled to ``max_samples`` rows (cost is quadratic for MMD).
    With ``bandwidth`` None each pair gets its own median-heuristic σ; pass a fixed σ to put all
    pairs of a study on one kernel.
    """
    a, b = _as_pair(subsample(x, max_samples, seed), subsample(y, max_samples, seed))
    d2 = _squared_distances(np.vstack([a, b]))
    sigma = _median_of(d2) if bandwidth is None else float(bandwidth)
    return {
        "mmd": _mmd(d2, a.shape[0], sigma),
        "wasserstein": sliced_wasserstein(a, b, n_projections=n_projections, seed=seed),
        "cosine": cosine_distance_of_means(a, b),
        "bandwidth": sigma,
    }
