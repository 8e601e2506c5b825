"""Exact k-nearest-neighbour search in Euclidean distance, chunked to bound memory."""

from __future__ import annotations

import torch


def knn(queries, bank, k: int = 1, chunk_elems: int = 2**25) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q, D) x (N, D) -> distances (Q, k) ascending (true L2, not squared) and indices (Q, k)."""
    queries = torch.as_tensor(queries).float()
    bank = torch.as_tensor(bank).float().to(queries.device)
    if k > bank.shape[0]:
        raise ValueError(f"k={k} exceeds the bank size {bank.shape[0]}")
    step = max(1, chunk_elems // max(1, bank.shape[0]))
    dists, idxs = [], []
    bank_sq = (bank * bank).sum(1)
    for start in range(0, queries.shape[0], step):
        q = queries[start : start + step]
        sq = ((q * q).sum(1, keepdim=True) - 2 * q @ bank.T + bank_sq).clamp_min_(0)
        d, i = torch.topk(sq, k, dim=1, largest=False, sorted=True)
        dists.append(d.sqrt_())
        idxs.append(i)
    return torch.cat(dists), torch.cat(idxs)
