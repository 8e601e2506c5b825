"""PatchCore memory-bank variants (config ``bank:``): what the test patches are compared with.

* ``greedy`` (default): PatchCore's approximate greedy coreset keeping ``coreset`` of the
  training patches (1 = all of them).
* ``full``: every training patch (exact nearest neighbour over the whole training set).
* ``random``: a seeded uniform subsample of ``coreset`` of the training patches, the baseline the
  coreset has to beat.
* ``pca``: every training patch, projected onto the top ``pca_dim`` principal components of the
  training patches; queries go through the same projection (mean and components are saved).
* ``kmeans``: ``k`` centroids of the training patches, by the method's ``kmeans`` parameter:
  ``faiss`` (the default; the ``faiss`` extra): Lloyd k-means, seeded random init from the method
  seed, ``KMEANS_ITERATIONS`` iterations, empty clusters re-split; ``sklearn``:
  ``MiniBatchKMeans`` (k-means++ init, ``random_state`` = the method seed, batches of 4096). Both
  are deterministic for a fixed seed; they are different algorithms, so the choice is config
  (never what happens to be installed) and ``state.json`` records it (``clustering``). At
  k = 1000 faiss was 2.6–9× faster, with a 0.3–2 % lower quantisation error
  (docs/performance.md, bench_kmeans.py).

Every bank is saved as ``bank.npy`` (float32, in the space queries are searched in); ``pca`` adds
``pca_mean.npy`` and ``pca_components.npy``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from iadbench.errors import ConfigError
from iadbench.io import save_npy
from iadbench.methods.coreset import approximate_greedy_coreset
from iadbench.methods.knn import _faiss
from iadbench.methods.patchcore.params import PatchCoreParams

log = logging.getLogger(__name__)

KMEANS_BATCH = 4096  # scikit-learn fallback
KMEANS_ITERATIONS = 10  # faiss: within 0.5 % of 25 iterations on the demo (README)


@dataclass
class Bank:
    """Search-space vectors plus, for ``pca``, the projection that maps queries there."""

    kind: str
    vectors: torch.Tensor
    mean: torch.Tensor | None = None
    components: torch.Tensor | None = None
    info: dict = field(default_factory=dict)

    def project(self, queries: torch.Tensor) -> torch.Tensor:
        """Map (Q, D) feature vectors into the bank's search space."""
        if self.components is None:
            return queries
        return (queries - self.mean) @ self.components

    def save(self, state_dir: Path) -> dict:
        """Write the bank files; return the summary that goes into state.json."""
        save_npy(state_dir / "bank.npy", self.vectors.cpu().numpy().astype(np.float32))
        if self.components is not None:
            save_npy(state_dir / "pca_mean.npy", self.mean.cpu().numpy().astype(np.float32))
            save_npy(
                state_dir / "pca_components.npy",
                self.components.cpu().numpy().astype(np.float32),
            )
        return {"kind": self.kind, "size": len(self.vectors), "dim": self.dim, **self.info}

    @classmethod
    def load(cls, state_dir: Path, kind: str, device: torch.device) -> Bank:
        """Read what :meth:`save` wrote, onto ``device``."""

        def read(name: str) -> torch.Tensor:
            return torch.from_numpy(np.load(state_dir / name)).to(device)

        if kind == "pca":
            return cls(kind, read("bank.npy"), read("pca_mean.npy"), read("pca_components.npy"))
        return cls(kind, read("bank.npy"))

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def fit_pca(patches: torch.Tensor, dim: int, device: torch.device):
    """Mean (D,), top-``dim`` components (D, dim) and their explained-variance ratio.

    The covariance is accumulated in float64 chunks and eigendecomposed; each component's sign
    is fixed so its largest-magnitude entry is positive, which makes the projection reproducible.
    """
    n, d = patches.shape
    if dim > d:
        raise ConfigError(f"pca_dim {dim} exceeds the feature dimension {d}")
    mean = patches.double().mean(0).to(device)
    cov = torch.zeros(d, d, dtype=torch.float64, device=device)
    step = max(1, 2**24 // d)
    for start in range(0, n, step):
        centred = patches[start : start + step].to(device).double() - mean
        cov += centred.T @ centred
    eigvals, eigvecs = torch.linalg.eigh(cov / max(1, n - 1))
    order = torch.argsort(eigvals, descending=True)[:dim]
    components = eigvecs[:, order]
    signs = torch.sign(components.gather(0, components.abs().argmax(0, keepdim=True)))
    components = components * signs
    explained = float(eigvals[order].sum() / eigvals.clamp_min(0).sum())
    return mean.float(), components.float(), explained


def kmeans_centroids(
    patches: np.ndarray, k: int, seed: int, clustering: str = "faiss"
) -> np.ndarray:
    """(k, D) float32 centroids of (N, D) ``patches`` by ``clustering`` (faiss or sklearn)."""
    x = np.ascontiguousarray(patches, dtype=np.float32)
    if clustering == "faiss":
        faiss = _faiss()
        if faiss is None:
            raise ConfigError(
                "patchcore kmeans: faiss is not installed: install the faiss extra "
                "(pip install 'iadbench[faiss]') or set kmeans: sklearn"
            )
        # faiss seeds its init sample, its subsample (above 256 points per centroid) and every
        # re-split of an empty cluster from ``seed``; its assignments and per-cluster sums do not
        # depend on thread timing, so reruns give identical centroids.
        kmeans = faiss.Kmeans(
            x.shape[1],
            k,
            niter=KMEANS_ITERATIONS,
            seed=int(seed) % 2**31,
            verbose=False,
        )
        kmeans.train(x)
        return np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
    from sklearn.cluster import MiniBatchKMeans

    kmeans = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=KMEANS_BATCH, n_init=1)
    return kmeans.fit(x).cluster_centers_.astype(np.float32)


def build_bank(
    patches: torch.Tensor,
    params: PatchCoreParams,
    seed: int,
    device: torch.device,
    progress: bool = True,
) -> Bank:
    """The bank named by ``params.bank`` from (N, D) float32 training patches."""
    kind = params.bank
    total = patches.shape[0]
    n_keep = max(1, int(round(float(params.coreset) * total)))
    if kind in ("greedy", "random") and n_keep < total:
        if kind == "greedy":
            chosen = approximate_greedy_coreset(
                patches,
                n_keep,
                projection_dim=int(params.projection_dim),
                n_starts=int(params.n_starts),
                seed=seed,
                device=device,
                progress=progress,
            )
        else:
            gen = torch.Generator().manual_seed(seed)
            chosen = torch.randperm(total, generator=gen)[:n_keep].sort().values
        return Bank(kind, patches[chosen.cpu()])
    if kind == "pca":
        mean, components, explained = fit_pca(patches, int(params.pca_dim), device)
        vectors = ((patches.to(device) - mean) @ components).cpu()
        return Bank(kind, vectors, mean, components, {"explained_variance": explained})
    if kind == "kmeans" and int(params.k) < total:
        clustering = params.kmeans
        centroids = kmeans_centroids(patches.numpy(), int(params.k), seed, clustering)
        return Bank(kind, torch.from_numpy(centroids), info={"clustering": clustering})
    if kind == "kmeans":
        log.warning("kmeans k=%s >= %d training patches: using them all", params.k, total)
    return Bank(kind, patches)
