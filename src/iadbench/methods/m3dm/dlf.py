"""M3DM's decision-layer fusion (DLF) of its per-branch memory banks, METHODS §6.1.

* Standardisation: every bank and every query patch is shifted and scaled by scalars. The
  reference's two-bank code (``DoubleRGBPointFeatures.run_coreset``) takes the mean of the xyz
  bank and the std of the rgb bank for *both* banks (``reference``); ``per_bank`` gives each
  bank its own.
* Per bank, PatchCore's reweighted score: ``s* = max_p min_m ‖p − m‖ / divisor`` at the patch
  ``p*``; ``m*`` its nearest bank patch; ``w = 1 − exp(s*/√D) / Σ exp(‖p* − m_k‖/divisor/√D)``
  over the ``n_reweight − 1`` nearest bank neighbours of ``m*`` other than itself; ``s = w·s*``.
* Fusion: an ``SGDOneClassSVM`` fitted on the TRAIN runs' weighted score vectors; the run score
  is its ``score_samples`` (``X · coef_``). On vectors of non-negative distances the separating
  direction points away from the origin, so larger distances give a larger fused score: the
  orientation is checked after the fit (every ``coef_`` > 0), not assumed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from iadbench.methods.knn import KnnIndex


def standardisation(xyz: torch.Tensor, rgb: torch.Tensor, mode: str) -> dict[str, float]:
    """Scalar ``{xyz,rgb}_{mean,std}`` of the (unreduced) banks; ``std`` is torch's unbiased."""
    xyz_mean, rgb_std = float(xyz.mean()), float(rgb.float().std())
    if mode == "reference":
        return {"xyz_mean": xyz_mean, "xyz_std": rgb_std, "rgb_mean": xyz_mean, "rgb_std": rgb_std}
    if mode == "per_bank":
        return {
            "xyz_mean": xyz_mean,
            "xyz_std": float(xyz.float().std()),
            "rgb_mean": float(rgb.float().mean()),
            "rgb_std": rgb_std,
        }
    raise ValueError(f"unknown standardisation {mode!r}")


class Bank:
    """A standardised memory bank and its kNN index; scores one sample's patches."""

    def __init__(self, patches: torch.Tensor, backend: str, device) -> None:
        self.patches = patches.float()
        self.index = KnnIndex(self.patches, backend=backend, device=device)

    def score(self, patches: torch.Tensor, n_reweight: int, divisor: float) -> float:
        """The reweighted score of one sample's (standardised) patches (module docstring)."""
        dists, idx = self.index.search(patches.float(), 1)
        dists, idx = dists[:, 0].cpu(), idx[:, 0].cpu()
        star = int(torch.argmax(dists))
        s_star = float(dists[star]) / divisor
        m_star = self.patches[int(idx[star])]
        k = min(n_reweight, len(self.patches))
        _, neighbours = self.index.search(m_star[None], k)
        others = self.patches[neighbours[0, 1:].cpu()]
        m_knn = torch.linalg.norm(patches[star].float() - others, dim=1) / divisor
        d = math.sqrt(patches.shape[1])
        weight = 1.0 - math.exp(s_star / d) / float(torch.exp(m_knn.double() / d).sum())
        return weight * s_star


def fit_fuser(vectors: np.ndarray, nu: float, max_iter: int, seed: int) -> dict:
    """SGDOneClassSVM on (runs, branches) TRAIN score vectors -> ``{coef, offset}``."""
    from sklearn.linear_model import SGDOneClassSVM

    svm = SGDOneClassSVM(nu=nu, max_iter=max_iter, random_state=seed)
    svm.fit(np.asarray(vectors, dtype=np.float64))
    coef = svm.coef_.astype(np.float64)
    if not (coef > 0).all():
        raise ValueError(
            f"the fusion SVM's coefficients {coef.tolist()} are not all positive: its "
            "score_samples would not grow with every branch's score (larger = more anomalous)"
        )
    return {"coef": coef.tolist(), "offset": float(np.ravel(svm.offset_)[0])}


def fused(vectors: np.ndarray, fuser: dict) -> np.ndarray:
    """``score_samples`` of the fitted SVM: the vectors' dot product with its coefficients."""
    return np.asarray(vectors, dtype=np.float64) @ np.asarray(fuser["coef"], dtype=np.float64)
