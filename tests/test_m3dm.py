"""M3DM on weld runs: the pseudo point cloud from the sensor CSV (by hand), FPS and kNN groups,
the Point-MAE checkpoint loader, PatchCore's reweighted bank score (by hand), the one-class SVM
fusion's orientation, and a fit that reads TRAIN only."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from iadbench.data.weld_demo import SENSOR_HEADER
from iadbench.errors import ConfigError
from iadbench.features.embeddings import INDEX_COLUMNS, EmbeddingSet
from iadbench.methods.base import MethodInputs
from iadbench.methods.kinds import params_of
from iadbench.methods.m3dm.dlf import Bank, fit_fuser, fused, standardisation
from iadbench.methods.m3dm.method import M3dm
from iadbench.methods.m3dm.pointcloud import fit_minmax, run_cloud
from iadbench.methods.m3dm.pointmae import (
    PointTransformer,
    farthest_point_sample,
    interpolate_features,
    knn_groups,
    load_checkpoint,
    point_patches,
)
from iadbench.metrics.image import image_auroc

TINY = dict(
    size=16, num_group=16, group_size=8, trans_dim=16, depth=2, heads=2, taps=[0, 1], patch_grid=8,
    knn_backend="torch",
)  # fmt: skip


def sensor_csv(path, columns, times=None):
    """A sensor CSV with the release's header; ``columns``: the six signals, one list each."""
    n = len(columns[0])
    times = times if times is not None else [float(i) for i in range(n)]
    rows = []
    for i in range(n):
        signals = [columns[c][i] for c in range(6)]
        rows.append(["2023-01-04", f"10:00:{times[i]:06.3f}", 77, *signals, ""])
    path.write_text(SENSOR_HEADER + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return str(path)


# --- the pseudo point cloud ----------------------------------------------------------------------


def test_pseudo_point_cloud_by_hand(tmp_path):
    # columns: Pressure, CO2 Weld Flow, Feed, Primary Weld Current, Wire Consumed, Voltage
    a = sensor_csv(tmp_path / "a.csv", [[4, 4, 4], [10, 12, 14], [0, 5, 10], [100, 150, 200],
                                        [0, 1, 2], [20, 20, 22]])  # fmt: skip
    b = sensor_csv(tmp_path / "b.csv", [[4, 4, 4], [10, 10, 10], [10, 10, 10], [120, 120, 300],
                                        [2, 3, 4], [18, 20, 20]])  # fmt: skip
    stats = fit_minmax([a, b])  # TRAIN statistics over every row of both runs
    assert stats["min"] == [4, 10, 0, 100, 0, 18] and stats["max"] == [4, 14, 10, 300, 4, 22]
    test = sensor_csv(tmp_path / "t.csv", [[4, 4, 4.004], [10, 14, 12], [5, 0, 10],
                                           [100, 300, 400], [0, 2, 4], [22, 18, 20]])  # fmt: skip
    # scaled rows (constant Pressure's range floored at 1e-3 * 4): [0, 0, .5, 0, 0, 1],
    # [0, 1, 0, 1, .5, 0], [1, .5, 1, 1.5, 1, .5] -> means 1.5/6, 2.5/6, 5.5/6 at t = 0, 1, 2 s;
    # 5 points at t = 0, .5, 1, 1.5, 2 interpolate linearly between them
    signal = [0.25, 1 / 3, 2.5 / 6, 4 / 6, 5.5 / 6]
    cloud = run_cloud(test, stats, 5)
    assert cloud.shape == (25, 3) and cloud.dtype == np.float32
    grid = cloud.reshape(5, 5, 3)  # row-major: point i * 5 + j is pixel (i, j)
    for i in range(5):
        assert np.allclose(grid[i, :, 2], signal, atol=1e-6)  # tiled over rows
        assert np.allclose(grid[i, :, 0], [0, 0.25, 0.5, 0.75, 1])  # x = column / (size - 1)
        assert np.allclose(grid[i, :, 1], i / 4)  # y = row / (size - 1)


# --- Point-MAE pieces ----------------------------------------------------------------------------


def test_fps_picks_the_farthest_point_and_is_deterministic():
    points = torch.tensor(
        [[0, 0, 0], [1, 0, 0], [10, 0, 0], [0, 5, 0], [3, 3, 0]], dtype=torch.float
    )
    # from point 0: (10,0,0) is farthest (100); then min squared distances to {0, 2} are
    # p1 1, p3 25, p4 18 -> p3; then p1 1, p4 min(18, 58, 13) = 13 -> p4; then p1
    assert farthest_point_sample(points, 5).tolist() == [0, 2, 3, 4, 1]
    assert farthest_point_sample(points, 3).tolist() == [0, 2, 3]
    cloud = torch.rand(500, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(farthest_point_sample(cloud, 40), farthest_point_sample(cloud, 40))


def test_knn_groups_are_the_nearest_points_relative_to_their_centre():
    xs = torch.tensor([0.0, 1, 3, 6, 10, 15])
    points = torch.stack([xs, torch.zeros(6), torch.zeros(6)], 1)
    idx, groups = knn_groups(points, points[[0, 3]], 3)
    # centre 0: distances 0, 1, 3 -> points 0, 1, 2; centre 6: 0 (6), 3 (3), 4 (10)
    assert idx.tolist() == [[0, 1, 2], [3, 2, 4]]
    assert groups[..., 0].tolist() == [[0, 1, 3], [0, -3, 4]]
    assert groups.shape == (2, 3, 3) and not groups[..., 1:].any()


def test_features_interpolate_from_the_three_nearest_centres():
    centres = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 2, 0], [9, 9, 9]])
    feats = torch.tensor([[1.0], [3.0], [5.0], [100.0]])
    out = interpolate_features(torch.tensor([[0.0, 0, 0], [1, 0, 0]]), centres, feats)
    assert out[0, 0] == pytest.approx(1.0, abs=1e-5)  # on a centre: (almost) only its feature
    # (1,0,0): squared distances 1, 1, 5 -> weights 1, 1, 1/5 over 2.2
    assert out[1, 0] == pytest.approx((1 + 3 + 5 / 5) / 2.2, rel=1e-5)


def test_point_patches_shape_and_taps():
    net = PointTransformer(16, 8, 16, 3, 2, (0, 2)).eval()
    cloud = torch.rand(12 * 12, 3, generator=torch.Generator().manual_seed(1))
    patches = point_patches(net, cloud, 12, 5)
    assert patches.shape == (25, 32)  # grid 5x5, two taps of width 16


def test_checkpoint_loads_point_mae_keys_and_names_mismatches(tmp_path):
    net = PointTransformer(8, 4, 16, 2, 2, (1,))
    state = {f"module.MAE_encoder.{k}": v for k, v in net.state_dict().items()}
    state["module.MAE_decoder.head.weight"] = torch.zeros(3)  # not the encoder's: dropped
    torch.save({"base_model": state}, tmp_path / "pointmae.pth")
    other = PointTransformer(8, 4, 16, 2, 2, (1,))
    load_checkpoint(other, tmp_path / "pointmae.pth")
    for key, value in net.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)
    deeper = PointTransformer(8, 4, 16, 3, 2, (1,))
    with pytest.raises(ConfigError, match="pointmae.pth lacks .*blocks.blocks.2"):
        load_checkpoint(deeper, tmp_path / "pointmae.pth")
    wider = PointTransformer(8, 4, 32, 2, 2, (1,))
    with pytest.raises(ConfigError, match="has shape"):
        load_checkpoint(wider, tmp_path / "pointmae.pth")


# --- decision-layer fusion -----------------------------------------------------------------------


def test_reweighted_bank_score_by_hand():
    bank = torch.tensor([[0.0, 0], [1, 0], [0, 2]])
    patches = torch.tensor([[0.0, 0.5], [3, 0]])
    # nearest distances 0.5 (b0) and 2 (b1): s* = 2 at p1, m* = b1; b1's neighbours: b1 (0),
    # b0 (1), b2 (sqrt 5) -> others b0, b2 at 3 and sqrt 13 from p1; D = sqrt 2
    root = math.sqrt(2)
    w = 1 - math.exp(2 / root) / (math.exp(3 / root) + math.exp(math.sqrt(13) / root))
    assert Bank(bank, "torch", "cpu").score(patches, 3, 1.0) == pytest.approx(w * 2, rel=1e-5)
    w = 1 - math.exp(0.002 / root) / (math.exp(0.003 / root) + math.exp(math.sqrt(13) / 1e3 / root))
    assert Bank(bank, "torch", "cpu").score(patches, 3, 1000.0) == pytest.approx(
        w * 0.002, rel=1e-4
    )


def test_reference_standardisation_uses_xyz_mean_and_rgb_std_for_both():
    xyz, rgb = torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0], [4.0]])
    ref = standardisation(xyz, rgb, "reference")
    assert ref == {"xyz_mean": 2.0, "xyz_std": pytest.approx(8**0.5), "rgb_mean": 2.0,
                   "rgb_std": pytest.approx(8**0.5)}  # fmt: skip
    own = standardisation(xyz, rgb, "per_bank")
    assert own["xyz_std"] == pytest.approx(2**0.5) and own["rgb_mean"] == 2.0


def test_fusion_is_sklearns_score_samples_and_larger_means_anomalous():
    from sklearn.linear_model import SGDOneClassSVM

    rng = np.random.default_rng(0)
    train = np.abs(rng.normal([1.0, 0.2], 0.1, size=(40, 2)))
    fuser = fit_fuser(train, 0.5, 1000, 42)
    svm = SGDOneClassSVM(nu=0.5, max_iter=1000, random_state=42).fit(train)
    probe = np.array([[1.0, 0.2], [1.5, 0.2], [1.0, 0.5], [3.0, 1.0]])
    assert np.allclose(fused(probe, fuser), svm.score_samples(probe))
    scores = fused(probe, fuser)
    assert scores[1] > scores[0] and scores[2] > scores[0] and scores[3] == scores.max()
    flipped = np.abs(train) * [1, -1]  # a branch whose "score" falls when anomalous
    with pytest.raises(ValueError, match="not all positive"):
        fit_fuser(flipped, 0.5, 1000, 42)


# --- the method ----------------------------------------------------------------------------------

GRID, DIM = 3, 6


def weld_split(tmp_path, split, labels, seed):
    """Runs with 2 photo views and a sensor CSV; an anomalous run has an odd patch in one view
    and a current spike."""
    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(5).normal(size=(4, DIM))
    rows, tokens, offset, paths = [], [], 0, []
    for i, label in enumerate(labels):
        sid = f"{split}{i:03d}"
        for view in range(2):
            patches = prototypes[rng.integers(0, 4, GRID * GRID)] + 0.05 * rng.normal(size=(9, DIM))
            if label and view == 1:
                patches[4] += 3.0
            rows.append([sid, label, "x", split, view, offset, GRID * GRID, GRID, GRID])
            tokens.append(patches)
            offset += GRID * GRID
        n = 12
        current = 150 + rng.normal(0, 2, n)
        if label:
            current[5:8] += 80
        cols = [[4.5] * n, list(15 + rng.normal(0, 0.2, n)), [8] * n, list(current),
                list(np.arange(n) * 1.0), list(21 + rng.normal(0, 0.2, n))]  # fmt: skip
        paths.append(sensor_csv(tmp_path / f"{sid}.csv", cols, [0.116 * k for k in range(n)]))
    store = EmbeddingSet(
        np.concatenate(tokens).astype(np.float16),
        pd.DataFrame(rows, columns=INDEX_COLUMNS),
        {"encoder": "dino", "modality": "photo", "dim": DIM, "config_hash": "h"},
    )
    index = pd.DataFrame({"sample_id": [f"{split}{i:03d}" for i in range(len(labels))],
                          "label": labels, "split": split, "sensor_path": paths})  # fmt: skip
    return index, store


def test_fit_reads_train_only_and_the_svm_is_fitted_on_train_scores(tmp_path):
    index, store = weld_split(tmp_path, "train", [0] * 8, 1)
    # VAL/TEST rows whose sensor files do not exist: a fit that read them would fail
    others = pd.DataFrame({"sample_id": ["v0", "t0"], "label": [1, 1], "split": ["val", "test"],
                           "sensor_path": [str(tmp_path / "nope.csv")] * 2})  # fmt: skip
    rows = pd.concat([index, others], ignore_index=True)
    method = M3dm({"kind": "m3dm", **TINY, "coreset": 0.5}, "cpu")
    inputs = MethodInputs(index, rows=rows, cached={"embeddings": {"train": {"photo": store}}})
    state = method.fit(inputs, tmp_path / "state")
    vectors = np.asarray(state["train_vectors"])
    assert vectors.shape == (8, 2) and (vectors > 0).all()
    from sklearn.linear_model import SGDOneClassSVM

    svm = SGDOneClassSVM(nu=0.5, max_iter=1000, random_state=42).fit(vectors)
    assert np.allclose(state["svm"]["coef"], svm.coef_)
    # the TRAIN runs scored again reproduce the vectors the SVM was fitted on (in-sample)
    train_again = MethodInputs(index, cached={"embeddings": {"photo": store}})
    again = method.score(tmp_path / "state", train_again, (1, 1))
    assert np.allclose(np.stack([again[2]["component_xyz"], again[2]["component_rgb"]], 1), vectors)
    xyz_patches = 8 * TINY["patch_grid"] ** 2
    assert state["xyz_bank_size"] == int(0.5 * xyz_patches)
    assert state["rgb_bank_size"] == int(0.5 * state["xyz_bank_size"])  # the reference's quirk


def test_anomalous_runs_score_higher_in_manifest_order(tmp_path):
    index, store = weld_split(tmp_path, "train", [0] * 10, 1)
    method = M3dm({"kind": "m3dm", **TINY, "coreset": 0.5, "rgb_coreset": "own"}, "cpu")
    state = method.fit(MethodInputs(index, cached={"embeddings": {"train": {"photo": store}}}),
                       tmp_path / "state")  # fmt: skip
    assert state["rgb_bank_size"] == int(0.5 * 10 * 2 * GRID * GRID)
    test, tstore = weld_split(tmp_path, "test", [0] * 4 + [1] * 4, 2)
    inputs = MethodInputs(test, cached={"embeddings": {"photo": tstore}})
    scores, maps, parts = method.score(tmp_path / "state", inputs, (1, 1))
    assert scores.shape == (8,) and maps is None
    assert image_auroc(test["label"], scores) == 1.0
    vectors = np.stack([parts["component_xyz"], parts["component_rgb"]], 1)
    assert np.allclose(scores, vectors @ np.asarray(state["svm"]["coef"]))
    backwards = MethodInputs(test.iloc[::-1].reset_index(drop=True), cached=inputs.cached)
    assert np.allclose(method.score(tmp_path / "state", backwards, (1, 1))[0], scores[::-1])


def test_params_refuse_inconsistent_shapes():
    with pytest.raises(ConfigError, match="heads 5 must divide"):
        params_of({"kind": "m3dm", "heads": 5})
    with pytest.raises(ConfigError, match="taps"):
        params_of({"kind": "m3dm", "depth": 4})
    with pytest.raises(ConfigError, match="num_group"):
        params_of({"kind": "m3dm", "size": 16})
    assert params_of({"kind": "m3dm"}).needs().embeddings == (("photo", "photo"),)


def test_a_bank_smaller_than_the_reweighting_is_refused(tmp_path):
    index, store = weld_split(tmp_path, "train", [0] * 4, 1)
    method = M3dm({"kind": "m3dm", **TINY, "coreset": 0.05}, "cpu")  # rgb bank: int(0.05 * 12)
    inputs = MethodInputs(index, cached={"embeddings": {"train": {"photo": store}}})
    with pytest.raises(ValueError, match="n_reweight = 3"):
        method.fit(inputs, tmp_path / "state")
