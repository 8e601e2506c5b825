"""M3DM on weld runs (METHODS §6.1): photo and pseudo-point-cloud memory banks fused by a
one-class SVM; see :mod:`.params` for the recipe and :mod:`.dlf` for the fusion's maths.

Differences from the reference forced by the data: a run has five photos, so its rgb patches are
those of all its views together (the run's rgb score is the reweighted score of the farthest of
them, i.e. of the worst view); the point cloud is the sensor log tiled into a surface
(:mod:`.pointcloud`), which has no background, so no zero points are removed; image scores only
(no masks, so no per-pixel fusion). The fusion SVM is fitted on the TRAIN runs scored against
banks that contain their own (coreset-reduced) patches, as the reference does: those in-sample
scores are lower than a held-out normal run's, so the SVM sees a tighter normal cloud than VAL
and TEST runs come from (state.json records ``svm_fit: in_sample``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from iadbench.backbones.weights import file_digest
from iadbench.device import resolve_device
from iadbench.errors import CacheError
from iadbench.io import save_json, save_npy
from iadbench.methods.base import Method, MethodInputs, load_state
from iadbench.methods.coreset import approximate_greedy_coreset
from iadbench.methods.knn import resolve_backend
from iadbench.methods.m3dm.dlf import Bank, fit_fuser, fused, standardisation
from iadbench.methods.m3dm.params import M3dmParams
from iadbench.methods.m3dm.pointcloud import fit_minmax, run_cloud
from iadbench.methods.m3dm.pointmae import PointTransformer, load_checkpoint, point_patches
from iadbench.methods.multimodal.stores import (
    check_identities,
    identities,
    labels_of,
    rows_by_sample,
    split_stores,
    stores_of,
)
from iadbench.progress import Progress
from iadbench.seeding import seeded

log = logging.getLogger(__name__)

ROLES = ("photo",)


def sensor_paths(index: pd.DataFrame, who: str) -> list[str]:
    """Each run's sensor CSV, in index order."""
    if "sensor_path" not in index.columns:
        raise CacheError(f"{who} reads each run's sensor CSV, but the manifest has no sensor_path")
    missing = index.loc[index["sensor_path"].isna(), "sample_id"].tolist()
    if missing:
        raise CacheError(f"{who}: {len(missing)} run(s) have no sensor CSV, e.g. {missing[:3]}")
    return index["sensor_path"].astype(str).tolist()


def coreset_indices(patches: torch.Tensor, n: int, params: M3dmParams, seed: int, device):
    """The approximate greedy coreset of size ``n`` (all patches when ``n`` covers them)."""
    if n >= len(patches):
        return torch.arange(len(patches))
    chosen = approximate_greedy_coreset(
        patches,
        n,
        projection_dim=int(params.projection_dim),
        n_starts=int(params.n_starts),
        seed=seed,
        device=device,
    )
    return chosen.cpu()


class M3dm(Method):
    kind = "m3dm"
    params_class = M3dmParams
    params: M3dmParams

    def __init__(self, cfg: dict, device: str = "auto") -> None:
        super().__init__(cfg, device)
        resolve_backend(self.params.knn_backend)

    def point_net(self, device: torch.device) -> PointTransformer:
        """The Point-MAE encoder: seeded random weights or the ``weights`` checkpoint."""
        p = self.params
        net = seeded(
            self.seed,
            PointTransformer,
            p.num_group,
            p.group_size,
            p.trans_dim,
            p.depth,
            p.heads,
            p.taps,
        )
        if p.weights != "random":
            load_checkpoint(net, p.weights)
        return net.eval().to(device)

    def point_features(
        self, net: PointTransformer, paths: list[str], stats: dict, device, desc: str
    ) -> list[torch.Tensor]:
        """(grid², C) point patches of each run's pseudo point cloud."""
        p, out = self.params, []
        with Progress(total=len(paths), desc=desc, unit="run", disable=None) as bar:
            for path in paths:
                cloud = torch.from_numpy(run_cloud(path, stats, p.size)).to(device)
                out.append(point_patches(net, cloud, p.size, p.patch_grid).cpu())
                bar.update()
        return out

    @staticmethod
    def rgb_features(store, sample_ids: list[str]) -> list[torch.Tensor]:
        """Each run's photo patch tokens, all its views together."""
        per_run = rows_by_sample(store, sample_ids, "photo")
        return [
            torch.from_numpy(np.concatenate([store.sequence(r) for r in rows])) for rows in per_run
        ]

    def vectors(self, banks: dict[str, Bank], std: dict, xyz, rgb) -> np.ndarray:
        """(runs, 2) ``[lambda_xyz·s_xyz, lambda_rgb·s_rgb]`` against the banks."""
        p, rows = self.params, []
        for x, r in zip(xyz, rgb, strict=True):
            xs = (x - std["xyz_mean"]) / std["xyz_std"]
            rs = (r - std["rgb_mean"]) / std["rgb_std"]
            s_xyz = banks["xyz"].score(xs, p.n_reweight, p.score_divisor)
            s_rgb = banks["rgb"].score(rs, p.n_reweight, p.score_divisor)
            rows.append([p.lambda_xyz * s_xyz, p.lambda_rgb * s_rgb])
        return np.asarray(rows, dtype=np.float64).reshape(-1, 2)

    def fit(self, train: MethodInputs, state_dir: Path) -> dict:
        p = self.params
        if labels_of(train.index).any():
            raise ValueError("m3dm fits on normal runs only, but TRAIN holds anomalous ones")
        device = resolve_device(self.device)
        store = split_stores(train.cached, "train", ROLES, self.kind)["photo"]
        ids = train.index["sample_id"].tolist()
        paths = sensor_paths(train.index, self.kind)
        stats = fit_minmax(paths)
        net = self.point_net(device)
        xyz = self.point_features(net, paths, stats, device, "m3dm train point features")
        rgb = self.rgb_features(store, ids)
        xyz_all, rgb_all = torch.cat(xyz), torch.cat(rgb)
        std = standardisation(xyz_all, rgb_all, p.standardise)
        xyz_bank = (xyz_all - std["xyz_mean"]) / std["xyz_std"]
        rgb_bank = (rgb_all - std["rgb_mean"]) / std["rgb_std"]
        n_xyz = max(1, int(p.coreset * len(xyz_bank)))
        xyz_bank = xyz_bank[coreset_indices(xyz_bank, n_xyz, p, self.seed, device)]
        base = len(xyz_bank) if p.rgb_coreset == "xyz_bank" else len(rgb_bank)
        n_rgb = max(1, int(p.coreset * base)) if p.coreset < 1 else len(rgb_bank)
        rgb_bank = rgb_bank[coreset_indices(rgb_bank, n_rgb, p, self.seed, device)]
        if min(len(xyz_bank), len(rgb_bank)) < p.n_reweight:
            raise ValueError(
                f"m3dm banks of {len(xyz_bank)} xyz and {len(rgb_bank)} rgb patches: the "
                f"reweighting needs at least n_reweight = {p.n_reweight} (raise coreset)"
            )
        banks = {
            "xyz": Bank(xyz_bank, p.knn_backend, device),
            "rgb": Bank(rgb_bank, p.knn_backend, device),
        }
        if p.coreset >= 1:
            log.warning(
                "m3dm coreset 1: every TRAIN patch is in its bank, so the TRAIN score vectors the "
                "SVM is fitted on are distance rounding noise (in-sample); use coreset < 1"
            )
        train_vectors = self.vectors(banks, std, xyz, rgb)
        fuser = fit_fuser(train_vectors, p.nu, p.max_iter, p.svm_seed)
        state_dir = Path(state_dir)
        save_npy(state_dir / "xyz_bank.npy", xyz_bank.numpy().astype(np.float32))
        save_npy(state_dir / "rgb_bank.npy", rgb_bank.numpy().astype(np.float32))
        state = {
            "kind": self.kind,
            "config": self.cfg,
            "embeddings": identities({"photo": store}),
            "n_train_runs": len(ids),
            "sensor_minmax": stats,
            "standardisation": std,
            "xyz_patches": len(xyz_all),
            "rgb_patches": len(rgb_all),
            "xyz_bank_size": len(xyz_bank),
            "rgb_bank_size": len(rgb_bank),
            "point_weights": p.weights
            if p.weights == "random"
            else f"{p.weights} (sha256 {file_digest(Path(p.weights))})",
            "svm": fuser,
            "svm_fit": "in_sample (TRAIN runs against banks holding their own patches)",
            "train_vectors": train_vectors.tolist(),
        }
        save_json(state_dir / "state.json", state)
        log.info(
            "m3dm banks: xyz %d of %d, rgb %d of %d patches; svm coef %s",
            len(xyz_bank),
            len(xyz_all),
            len(rgb_bank),
            len(rgb_all),
            fuser["coef"],
        )
        return state

    def scorer(self, state_dir: Path):
        """Load the banks and the point encoder once; the returned function scores a split."""
        state_dir = Path(state_dir)
        state = load_state(state_dir)
        device = resolve_device(self.device)
        p = self.params
        banks = {
            name: Bank(
                torch.from_numpy(np.load(state_dir / f"{name}_bank.npy")), p.knn_backend, device
            )
            for name in ("xyz", "rgb")
        }
        net = self.point_net(device)

        def score(inputs: MethodInputs, out_size: tuple[int, int]):
            stores = stores_of(inputs.cached, ROLES, self.kind)
            check_identities(state, stores, str(state_dir))
            ids = inputs.index["sample_id"].tolist()
            paths = sensor_paths(inputs.index, self.kind)
            xyz = self.point_features(net, paths, state["sensor_minmax"], device, "m3dm points")
            rgb = self.rgb_features(stores["photo"], ids)
            vectors = self.vectors(banks, state["standardisation"], xyz, rgb)
            components = {"component_xyz": vectors[:, 0], "component_rgb": vectors[:, 1]}
            return fused(vectors, state["svm"]), None, components

        return score

    def score(self, state_dir: Path, inputs: MethodInputs, out_size: tuple[int, int]):
        return self.scorer(state_dir)(inputs, out_size)
