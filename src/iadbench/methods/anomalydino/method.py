"""AnomalyDINO (Damm et al., WACV 2025) on cached ViT patch tokens.

fit: the category's ``train`` images sorted by path, slice ``[seed·shots, (seed+1)·shots)``
(the authors' deterministic draw), are the references. Their tokens come from the feature store;
with ``rotation`` the fit also encodes 7 rotated copies of each reference itself (the same
backbone config, hence the same bytes the store would hold): they serve this one fit only, so
caching them for every train image would store 8x the split to use k of it. The memory is the
references' tokens (fp16, as the store keeps them); with ``mask_references`` the background
patches of masked categories are left out.
score: each test token's mean cosine distance to its ``num_nn`` nearest memory tokens; in
masked categories (``masking``) the background patches (PCA foreground test) score 0; image
score = mean of the top 1 % of the patch distances; map = bilinear upsampling, Gaussian blur.

With ``smaller_edge`` the tokens cover the whole image, so the map is upsampled to the dataset's
square ``resize`` (the whole image, as the masks are resized), blurred there, then centre-cropped
like the masks; otherwise the tokens cover the crop and the map is upsampled to it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from iadbench.device import resolve_device
from iadbench.errors import CacheError, ConfigError
from iadbench.features.store import FeatureSet
from iadbench.io import save_json, save_npy
from iadbench.methods.anomalydino.ops import (
    augment,
    first_component,
    foreground_mask,
    mean_top1p,
    nearest_cosine,
)
from iadbench.methods.anomalydino.params import AnomalyDinoParams
from iadbench.methods.base import Method, MethodInputs, check_features, load_state
from iadbench.methods.smoothing import smooth_map
from iadbench.progress import Progress

log = logging.getLogger(__name__)


def reference_slice(paths: list[str], shots: int, seed: int) -> list[int]:
    """Indices into ``paths`` of the references: positions ``[seed·shots, (seed+1)·shots)`` of
    the paths in sorted order (the authors sort ``train/good`` file names)."""
    order = sorted(range(len(paths)), key=lambda i: str(paths[i]))
    start, stop = seed * shots, (seed + 1) * shots
    if stop > len(paths):
        raise ConfigError(
            f"shots {shots} with seed {seed} take sorted train images {start}..{stop - 1}, but "
            f"there are {len(paths)}: lower shots or seed (seeds draw disjoint slices)"
        )
    return order[start:stop]


def keep_foreground(tokens: np.ndarray) -> np.ndarray:
    """(h, w, C) tokens -> (h·w,) bool foreground (PCA test on the image's own tokens)."""
    h, w, c = tokens.shape
    flat = np.asarray(tokens, dtype=np.float32).reshape(h * w, c)
    return foreground_mask(first_component(flat), (h, w)).ravel()


def normalised(tokens: np.ndarray, device: torch.device) -> torch.Tensor:
    """(n, C) tokens (any float dtype) -> L2-normalised float32 rows on ``device``."""
    rows = torch.from_numpy(np.asarray(tokens, dtype=np.float32)).to(device)
    return torch.nn.functional.normalize(rows, dim=1)


class AnomalyDino(Method):
    """k-shot memory of DINOv2 patch tokens, cosine nearest neighbour, mean of the top 1 %."""

    kind = "anomalydino"
    params_class = AnomalyDinoParams
    params: AnomalyDinoParams

    def fit(self, train: MethodInputs, state_dir: Path) -> dict:
        features = train.require_features("AnomalyDINO")
        index = features.index
        category = str(index["category"].iloc[0])
        picks = reference_slice(index["image_path"].tolist(), int(self.params.shots), self.seed)
        copies = [np.asarray(features.features[i]) for i in picks]  # angle 0, from the store
        if self.params.rotation:
            copies = self._with_rotations(train, index.iloc[picks], copies)
        masked = self.params.masks(category)
        grid = copies[0].shape[:2]
        kept = []
        for tokens in copies:
            flat = tokens.reshape(-1, tokens.shape[-1])
            kept.append(
                flat[keep_foreground(tokens)] if masked and self.params.mask_references else flat
            )
        bank = np.concatenate(kept).astype(np.float16)
        state_dir = Path(state_dir)
        save_npy(state_dir / "bank.npy", bank)
        state = {
            "kind": self.kind,
            "config": self.cfg,
            "category": category,
            "references": index["sample_id"].iloc[picks].tolist(),
            "copies": len(copies),
            "grid": list(grid),
            "masked": masked,
            "bank_size": int(len(bank)),
            "feature_dim": int(bank.shape[1]),
            "features": features.meta,
        }
        save_json(state_dir / "state.json", state)
        log.info("anomalydino %s: %d references, %d memory tokens", category, len(picks), len(bank))
        return state

    def _with_rotations(
        self, train: MethodInputs, refs: pd.DataFrame, copies: list[np.ndarray]
    ) -> list[np.ndarray]:
        """The stored tokens of each reference followed by those of its 7 rotated copies, encoded
        here with the store's own backbone config (refused if it is not the store's)."""
        from iadbench.data.images import load_image
        from iadbench.features.extract import FeatureConfig, patch_features

        if train.backbone is None:
            raise CacheError("anomalydino rotation needs the backbone entry to encode references")
        cfg = FeatureConfig.from_config(train.backbone, train.dataset)
        if cfg.hash() != train.features.meta["config_hash"]:
            raise CacheError(
                f"the cached train features were made with config "
                f"{train.features.meta['config_hash']}, the backbone entry gives {cfg.hash()}"
            )
        device = resolve_device(self.device)
        backbone = cfg.load_backbone(device)
        out = []
        with Progress(total=len(refs), desc="rotated references", unit="img", disable=None) as bar:
            for stored, path in zip(copies, refs["image_path"]):
                turned = augment(load_image(path), True)[1:]
                images = [cfg.image(rgb, backbone.patch) for rgb in turned]
                tokens, _ = patch_features(backbone, images, cfg, device)
                if tokens.shape[1:] != stored.shape:
                    raise CacheError(
                        f"{path}: rotated copies give tokens {tokens.shape[1:]}, the store "
                        f"{stored.shape}"
                    )
                out += [stored, *tokens]
                bar.update(1)
        return out

    def scorer(self, state_dir: Path):
        """Load the memory once; the returned function scores inputs."""
        state_dir = Path(state_dir)
        state = load_state(state_dir)
        device = resolve_device(self.device)
        bank = normalised(np.load(state_dir / "bank.npy"), device)

        def score(inputs: MethodInputs, out_size: tuple[int, int]):
            test = inputs.require_features("AnomalyDINO")
            check_features(state_dir, state, test)
            return self._score(test, bank, bool(state["masked"]), inputs.dataset, out_size)

        return score

    def score(self, state_dir: Path, inputs: MethodInputs, out_size: tuple[int, int]):
        return self.scorer(state_dir)(inputs, out_size)

    def _score(
        self, test: FeatureSet, bank: torch.Tensor, masked: bool, dataset: dict, out_size
    ) -> tuple[np.ndarray, np.ndarray]:
        n, h, w, _ = test.features.shape
        scores = np.empty(n, dtype=np.float64)
        maps = np.empty((n, *out_size), dtype=np.float32)
        k = int(self.params.num_nn)
        whole = test.meta.get("smaller_edge") is not None
        for i in range(n):
            tokens = np.asarray(test.features[i])
            keep = keep_foreground(tokens) if masked else np.ones(h * w, dtype=bool)
            dists = np.zeros(h * w, dtype=np.float32)
            if keep.any():
                queries = normalised(tokens.reshape(h * w, -1)[keep], bank.device)
                dists[keep] = nearest_cosine(queries, bank, k).cpu().numpy()
            scores[i] = mean_top1p(dists)
            maps[i] = self._map(dists.reshape(h, w), whole, dataset, out_size)
        return scores, maps

    def _map(self, grid: np.ndarray, whole: bool, dataset: dict, out_size) -> np.ndarray:
        """Patch distances -> the evaluation-size map (see the module docstring)."""
        p = self.params
        blur = dict(sigma=float(p.sigma), mode=p.upsample, border=p.blur_border)
        if not whole:
            return smooth_map(grid, out_size, **blur)
        resize = int(dataset.get("resize", out_size[0]))
        full = smooth_map(grid, (resize, resize), **blur)
        top, left = (resize - out_size[0]) // 2, (resize - out_size[1]) // 2  # Geometry's crop
        return full[top : top + out_size[0], left : left + out_size[1]]
