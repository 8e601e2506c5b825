"""Nearest-neighbour scoring speed: faiss vs torch (chunk sizes, bf16 bank) on one bank.

    python benchmarks/bench_knn.py --state results/mvtec_ad/models/patchcore_lite0/bottle \
        --features results/mvtec_ad/features/lite0/bottle/test.npy
    python benchmarks/bench_knn.py            # synthetic: 16,384 x 152 bank, 45,472 queries

Prints queries/s per backend and setting (best of --repeat runs) and each setting's agreement
with an exact float64 search on a query subset (share of identical nearest indices, max
relative distance error). Run by hand; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from iadbench.methods.knn import KnnIndex, _faiss


def load(args) -> tuple[np.ndarray, np.ndarray]:
    if args.state and args.features:
        bank = np.load(os.path.join(args.state, "bank.npy")).astype(np.float32)
        feats = np.load(args.features, mmap_mode="r")
        queries = np.asarray(feats, dtype=np.float32).reshape(-1, feats.shape[-1])
        return bank, queries
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(256, args.dim)).astype(np.float32) * 3
    bank = centres[rng.integers(0, 256, args.bank)] + rng.normal(size=(args.bank, args.dim))
    queries = centres[rng.integers(0, 256, args.queries)] + rng.normal(
        size=(args.queries, args.dim)
    )
    return bank.astype(np.float32), queries.astype(np.float32)


def exact(bank: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    b, q = torch.from_numpy(bank).double(), torch.from_numpy(queries).double()
    d = torch.cdist(q, b)
    dist, idx = torch.topk(d, k, dim=1, largest=False)
    return dist.numpy(), idx.numpy()


def bf16_search(bank: torch.Tensor, queries: torch.Tensor, k: int, chunk: int):
    """Distances from a bfloat16 matmul, re-ranked exactly on the top 4k candidates."""
    bank16, sq = bank.bfloat16(), (bank * bank).sum(1)
    out_d, out_i = [], []
    step = max(1, chunk // len(bank))
    for start in range(0, len(queries), step):
        q = queries[start : start + step]
        approx = (q * q).sum(1, keepdim=True) - 2 * (q.bfloat16() @ bank16.T).float() + sq
        cand = torch.topk(approx, min(4 * k, len(bank)), dim=1, largest=False).indices
        d = torch.linalg.vector_norm(bank[cand] - q[:, None], dim=2)
        best = torch.topk(d, k, dim=1, largest=False)
        out_d.append(best.values)
        out_i.append(torch.gather(cand, 1, best.indices))
    return torch.cat(out_d), torch.cat(out_i)


def timed(fn, repeat: int) -> tuple[float, tuple]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", help="a fitted PatchCore state directory (bank.npy)")
    parser.add_argument("--features", help="a test feature file (.npy) of the same backbone")
    parser.add_argument("--bank", type=int, default=16384)
    parser.add_argument("--queries", type=int, default=45472)
    parser.add_argument("--dim", type=int, default=152)
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--check", type=int, default=2000, help="queries checked against float64")
    args = parser.parse_args()
    bank, queries = load(args)
    print(f"bank {bank.shape}, queries {queries.shape}, k={args.k}, torch threads "
          f"{torch.get_num_threads()}, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    ref_d, ref_i = exact(bank, queries[: args.check], args.k)
    q = torch.from_numpy(queries)
    settings = []
    if _faiss() is not None:
        index = KnnIndex(bank, backend="faiss")
        settings.append(("faiss IndexFlatL2", lambda: index.search(q, args.k)))
    for chunk in (2**22, 2**24, 2**25, 2**27):
        index_t = KnnIndex(bank, backend="torch", chunk_elems=chunk)
        settings.append((f"torch fp32 chunk 2^{chunk.bit_length() - 1}",
                         lambda i=index_t: i.search(q, args.k)))  # fmt: skip
    b = torch.from_numpy(bank)
    settings.append(("torch bf16 + exact re-rank", lambda: bf16_search(b, q, args.k, 2**25)))
    print(f"{'setting':32s} {'queries/s':>12s} {'same NN':>8s} {'max rel err':>12s}")
    for name, fn in settings:
        seconds, (dist, idx) = timed(fn, args.repeat)
        dist, idx = np.asarray(dist)[: args.check], np.asarray(idx)[: args.check]
        same = float((idx[:, 0] == ref_i[:, 0]).mean())
        err = float(np.max(np.abs(dist - ref_d) / np.maximum(ref_d, 1e-6)))
        print(f"{name:32s} {len(queries) / seconds:12,.0f} {same:8.4f} {err:12.2e}")


if __name__ == "__main__":
    main()
