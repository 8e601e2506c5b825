"""PaDiM (Defard et al., ICPR 2020): one Gaussian per patch position over the training images.

fit: fused training features -> ``n_features`` channels drawn at random (seeded by the method
``seed``; the reference code used 1024, set ``seed: 1024`` to mirror it; capped at the fused
dimension; null = by backbone model: resnet18 100, wide_resnet50_2 550 as anomalib, else 100)
-> per-position mean and sample covariance (N-1) + ``epsilon``·I, inverted in float64.
score: Mahalanobis distance (square root) per position -> bilinear upsampling
(align_corners=False) to the evaluation size -> Gaussian blur (``sigma``, border
``blur_border``); image score = map max.

Geometry comes from the backbone entry. The published embedding (layer1-3 raw maps concatenated
at layer1's grid by nearest upsampling, 56x56 at 224) is the entry ``{model: resnet18,
layers: [1, 2, 3], patch_size: 1, upsample: nearest}`` (the example configs carry one). A
PatchCore entry (default taps 2 and 3, 3x3 locally averaged, bilinear) also works: then PaDiM and
PatchCore read the same features and differ only in the detector, which is not the paper's PaDiM.

State: ``mean.npy`` (H, W, d) and ``inv_cov.npy`` (H, W, d, d), float32; the chosen channels
(indices into the fused channels) are in state.json.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from iadbench.device import resolve_device
from iadbench.errors import ConfigError
from iadbench.features.fusion import FusionState
from iadbench.io import save_npy
from iadbench.methods.base import Method, MethodInputs, check_features, fit_fusion, load_state
from iadbench.methods.padim.params import N_FEATURES_DEFAULTS, PadimParams, default_n_features
from iadbench.methods.smoothing import smooth_map

log = logging.getLogger(__name__)

MAX_STATE_BYTES = 4 * 2**30
POSITION_CHUNK_ELEMS = 2**24  # float64 values per batch of per-position covariance work


def choose_channels(dim: int, n_features: int, seed: int) -> np.ndarray:
    """Sorted random subset of ``min(n_features, dim)`` channel indices (sorted: order-free)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(dim, size=min(n_features, dim), replace=False))


def gaussian_fit(
    feats: torch.Tensor, epsilon: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, P, d) -> mean (P, d) and inverse of (sample covariance + epsilon·I) (P, d, d), float32.

    Positions are processed in batches; covariance and its Cholesky inverse are float64.
    """
    n, positions, d = feats.shape
    if n < 2:
        raise ValueError(f"PaDiM needs at least 2 training images, got {n}")
    means = torch.empty(positions, d)
    inv = torch.empty(positions, d, d)
    eye = torch.eye(d, dtype=torch.float64, device=device)
    step = max(1, POSITION_CHUNK_ELEMS // (d * (d + n)))
    for start in range(0, positions, step):
        x = feats[:, start : start + step].to(device, torch.float64).transpose(0, 1)
        mu = x.mean(1, keepdim=True)
        centred = x - mu
        cov = centred.transpose(1, 2) @ centred / (n - 1) + epsilon * eye
        means[start : start + step] = mu[:, 0].float().cpu()
        inv[start : start + step] = torch.cholesky_inverse(torch.linalg.cholesky(cov)).float().cpu()
    return means, inv


def mahalanobis(feats: torch.Tensor, mean: torch.Tensor, inv_cov: torch.Tensor) -> torch.Tensor:
    """(B, P, d) against per-position (P, d), (P, d, d) -> distances (B, P)."""
    delta = (feats - mean).transpose(0, 1)  # (P, B, d)
    sq = ((delta @ inv_cov) * delta).sum(-1).transpose(0, 1)
    return sq.clamp_min_(0).sqrt_()


class Padim(Method):
    """Per-position multivariate Gaussian on a random channel subset."""

    kind = "padim"
    params_class = PadimParams
    params: PadimParams

    def fit(self, train: MethodInputs, state_dir: Path) -> dict:
        train = train.require_features("PaDiM")
        fusion = fit_fusion(self.params.fusion, train)
        n_features = self.params.n_features
        if n_features is None:
            model = train.meta.get("model")
            n_features = default_n_features(model)
            if model not in N_FEATURES_DEFAULTS:
                log.warning(
                    "padim: no published n_features for backbone %r; using %d", model, n_features
                )
        channels = choose_channels(fusion.output_dim, int(n_features), self.seed)
        n_images, h, w, _ = train.features.shape
        d = len(channels)
        state_bytes = h * w * d * d * 4
        if state_bytes > MAX_STATE_BYTES:
            raise ConfigError(
                f"padim: {h}x{w} positions x {d}x{d} inverse covariances need "
                f"{state_bytes / 2**30:.1f} GiB (limit {MAX_STATE_BYTES / 2**30:.0f} GiB); "
                "lower n_features"
            )
        feats = torch.from_numpy(fusion.apply(train.features, select=channels))
        mean, inv_cov = gaussian_fit(
            feats.reshape(n_images, h * w, d),
            float(self.params.epsilon),
            resolve_device(self.device),
        )
        state_dir = Path(state_dir)
        save_npy(state_dir / "mean.npy", mean.reshape(h, w, d).numpy())
        save_npy(state_dir / "inv_cov.npy", inv_cov.reshape(h, w, d, d).numpy())
        summary = self.save_state(state_dir, train, fusion, d, channels=channels.tolist())
        log.info("padim: %d of %d fused channels, %dx%d positions", d, fusion.output_dim, h, w)
        return summary

    def scorer(self, state_dir: Path):
        """Load the Gaussians once; the returned function scores inputs."""
        state_dir = Path(state_dir)
        state = load_state(state_dir)
        device = resolve_device(self.device)
        fusion = FusionState.from_dict(state["fusion"])
        channels = np.asarray(state["channels"])
        mean = torch.from_numpy(np.load(state_dir / "mean.npy")).to(device)
        inv_cov = torch.from_numpy(np.load(state_dir / "inv_cov.npy")).to(device)

        def score(inputs: MethodInputs, out_size: tuple[int, int]):
            test = inputs.require_features("PaDiM")
            check_features(state_dir, state, test)
            return self._score(test, fusion, channels, mean, inv_cov, device, out_size)

        return score

    def score(self, state_dir: Path, inputs: MethodInputs, out_size: tuple[int, int]):
        return self.scorer(state_dir)(inputs, out_size)

    def _score(self, test, fusion, channels, mean, inv_cov, device, out_size):
        h, w, d = mean.shape
        mean, inv_cov = mean.reshape(h * w, d), inv_cov.reshape(h * w, d, d)
        n_images = test.features.shape[0]
        if test.features.shape[1:3] != (h, w):
            raise ValueError(f"test grid {test.features.shape[1:3]} != fitted grid {(h, w)}")
        scores = np.empty(n_images, dtype=np.float64)
        maps = np.empty((n_images, *out_size), dtype=np.float32)
        step = max(1, 2**24 // (h * w * d))
        for start in range(0, n_images, step):
            feats = fusion.apply(test.features[start : start + step], select=channels)
            dist = mahalanobis(
                torch.from_numpy(feats).reshape(-1, h * w, d).to(device), mean, inv_cov
            )
            for j, row in enumerate(dist.cpu().numpy()):
                maps[start + j] = smooth_map(
                    row.reshape(h, w), out_size, self.params.sigma, border=self.params.blur_border
                )
                scores[start + j] = float(maps[start + j].max())
        return scores, maps
