"""The k-means bank's clustering: faiss against the scikit-learn fallback, seconds and quality.

Printed, never asserted. For each input (``.npy`` files of (N, D) float32 training patches, and a
seeded random (N, D) Gaussian bank), :func:`iadbench.methods.banks.kmeans_centroids` runs with
faiss and with ``MiniBatchKMeans`` at the same k and seed; each row gives the median wall seconds
of ``--repeats`` fits in this process and the quantisation error (mean squared distance of every
patch to its nearest centroid, lower is better) of the last one.

    .venv/bin/python benchmarks/bench_kmeans.py --npy brick.npy grass.npy --random 214016x152
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from iadbench.methods.banks import kmeans_centroids


def quantisation_error(x: np.ndarray, centroids: np.ndarray) -> float:
    """Mean squared L2 distance of each row of ``x`` to its nearest centroid (exact, chunked)."""
    c2 = (centroids.astype(np.float64) ** 2).sum(1)
    total = 0.0
    for start in range(0, len(x), 8192):
        chunk = x[start : start + 8192].astype(np.float64)
        d2 = (chunk**2).sum(1)[:, None] - 2 * chunk @ centroids.T.astype(np.float64) + c2
        total += float(np.clip(d2.min(1), 0, None).sum())
    return total / len(x)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--npy", nargs="*", default=[], help="(N, D) float32 patch files")
    parser.add_argument("--random", nargs="*", default=[], help="NxD shapes of random banks")
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sklearn-repeats", type=int, default=1)
    args = parser.parse_args(argv)
    inputs = [(os.path.basename(p), np.load(p).astype(np.float32)) for p in args.npy]
    for shape in args.random:
        n, d = (int(v) for v in shape.split("x"))
        rng = np.random.default_rng(args.seed)
        inputs.append((f"random {n}x{d}", rng.standard_normal((n, d), dtype=np.float32)))
    print(f"load before {os.getloadavg()}", flush=True)
    print("input | N x D | clustering | seconds (median) | all runs | quantisation error")
    for name, x in inputs:
        for label, repeats in (("faiss", args.repeats), ("sklearn", args.sklearn_repeats)):
            seconds, centroids = [], None
            for _ in range(repeats):
                start = time.perf_counter()
                centroids = kmeans_centroids(x, args.k, args.seed, clustering=label)
                seconds.append(time.perf_counter() - start)
            error = quantisation_error(x, centroids)
            runs = " ".join(f"{s:.2f}" for s in seconds)
            print(
                f"{name} | {x.shape[0]} x {x.shape[1]} | {label} | "
                f"{statistics.median(seconds):.2f} | {runs} | {error:.4f}",
                flush=True,
            )
    print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
