"""Exact k-nearest-neighbour search in Euclidean distance, through torch or faiss.

Both backends return true L2 distances (squared ones are clamped at 0 and square-rooted here) in
ascending order with int64 indices, so results agree to float tolerance whichever runs. ``auto``
is torch on every device: its fused matmul search ran 1.6-4x faster than faiss's
``IndexFlatL2`` on 2 CPU cores (``benchmarks/bench_knn.py``, README), and on a GPU it needs no
GPU build of faiss. ``faiss`` stays available by name.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from iadbench.errors import ConfigError
from iadbench.methods.shared import KNN_BACKENDS as BACKENDS


def _faiss():
    """The faiss module, or None when it is not installed."""
    # faiss logs each CPU-specific build it tries before the one that loads; that is not news.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def resolve_backend(backend: str) -> str:
    """``auto`` -> ``torch``; ``faiss`` only when asked for and installed."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown knn_backend {backend!r} (known: {', '.join(BACKENDS)})")
    if backend == "faiss" and _faiss() is None:
        raise ConfigError("knn_backend faiss requested but faiss is not installed")
    return "torch" if backend == "auto" else backend


class KnnIndex:
    """A fixed bank (N, D) searched many times (one index build, many queries)."""

    def __init__(
        self,
        bank,
        backend: str = "auto",
        device: str | torch.device = "cpu",
        chunk_elems: int = 2**25,
    ) -> None:
        self.device = torch.device(device)
        self.backend = resolve_backend(backend)
        self.bank = torch.as_tensor(bank).float().to(self.device)
        self.chunk_elems = chunk_elems
        if self.backend == "faiss":
            faiss = _faiss()
            index = faiss.IndexFlatL2(self.bank.shape[1])
            index.add(np.ascontiguousarray(self.bank.cpu().numpy()))
            if self.device.type == "cuda":
                self._gpu_resources = faiss.StandardGpuResources()
                index = faiss.index_cpu_to_gpu(self._gpu_resources, self.device.index or 0, index)
            self._index = index
        else:
            self._bank_sq = (self.bank * self.bank).sum(1)
            self._bank_t = self.bank.T.contiguous()

    def __len__(self) -> int:
        return self.bank.shape[0]

    def search(self, queries, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q, D) -> distances (Q, k) ascending (true L2) and indices (Q, k), on the bank device."""
        if not 1 <= k <= len(self):
            raise ValueError(f"k={k} must be in 1..{len(self)} (the bank size)")
        queries = torch.as_tensor(queries).float()
        if self.backend == "faiss":
            sq, idx = self._index.search(np.ascontiguousarray(queries.cpu().numpy()), k)
            dists = torch.from_numpy(sq).clamp_min_(0).sqrt_().to(self.device)
            return dists, torch.from_numpy(idx).to(self.device)
        queries = queries.to(self.device)
        step = max(1, self.chunk_elems // len(self))
        dists, idxs = [], []
        for start in range(0, queries.shape[0], step):
            q = queries[start : start + step]
            # |b|^2 - 2 q.b in one fused matmul; |q|^2 is the same along a row, so it is added
            # to the k winners only (half the time of the plain expression on 2 CPU cores).
            partial = torch.addmm(self._bank_sq, q, self._bank_t, alpha=-2)
            if k == 1:
                d, i = partial.min(dim=1, keepdim=True)
            else:
                d, i = torch.topk(partial, k, dim=1, largest=False, sorted=True)
            dists.append((d + (q * q).sum(1, keepdim=True)).clamp_min_(0).sqrt_())
            idxs.append(i)
        return torch.cat(dists), torch.cat(idxs)


def knn(queries, bank, k: int = 1, backend: str = "torch") -> tuple[torch.Tensor, torch.Tensor]:
    """One-off search: (Q, D) x (N, D) -> (distances, indices), each (Q, k)."""
    device = torch.as_tensor(queries).device
    return KnnIndex(bank, backend=backend, device=device).search(queries, k)
