"""PatchCore memory-bank variants, fusion and kNN backends, end to end on synthetic features."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import feature_inputs

from iadbench.errors import CacheError, ConfigError
from iadbench.methods import build_method
from iadbench.methods.banks import Bank, build_bank, kmeans_centroids
from iadbench.methods.coreset import approximate_greedy_coreset
from iadbench.methods.patchcore.params import BANKS, PatchCoreParams

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sets():
    """12 normal training images; 4 normal + 4 test images with one off-distribution patch."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 12)) * 3

    def normal(n):
        picks = centres[rng.integers(0, 6, size=(n, 5, 5))]
        return picks + 0.3 * rng.normal(size=(n, 5, 5, 12))

    test = normal(8)
    test[4:, 2, 2] += 8.0
    return feature_inputs(normal(12), [4, 8]), feature_inputs(test, [4, 8])


@pytest.fixture
def patches():
    return torch.from_numpy(np.random.default_rng(1).normal(size=(400, 12)).astype(np.float32))


def cfg(**overrides):
    return dataclasses.replace(PatchCoreParams(), **overrides)


def test_greedy_bank_is_the_approximate_coreset(patches):
    bank = build_bank(patches, cfg(coreset=0.1), seed=3, device=CPU, progress=False)
    chosen = approximate_greedy_coreset(patches, 40, seed=3, progress=False)
    assert torch.equal(bank.vectors, patches[chosen])


def test_full_and_random_banks(patches):
    assert torch.equal(build_bank(patches, cfg(bank="full"), 0, CPU).vectors, patches)
    a = build_bank(patches, cfg(bank="random", coreset=0.25), 5, CPU).vectors
    b = build_bank(patches, cfg(bank="random", coreset=0.25), 5, CPU).vectors
    c = build_bank(patches, cfg(bank="random", coreset=0.25), 6, CPU).vectors
    assert a.shape == (100, 12) and torch.equal(a, b) and not torch.equal(a, c)
    rows = {tuple(r) for r in patches.tolist()}
    assert all(tuple(r) in rows for r in a.tolist())


def test_pca_bank_is_an_orthonormal_projection(patches, tmp_path):
    bank = build_bank(patches, cfg(bank="pca", pca_dim=5), 0, CPU)
    comps = bank.components
    assert bank.vectors.shape == (400, 5) and 0 < bank.info["explained_variance"] < 1
    torch.testing.assert_close(comps.T @ comps, torch.eye(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(bank.project(patches), bank.vectors)
    # A full-rank PCA is a rotation: distances are unchanged.
    full = build_bank(patches, cfg(bank="pca", pca_dim=12), 0, CPU)
    torch.testing.assert_close(
        torch.pdist(full.vectors), torch.pdist(patches), rtol=1e-4, atol=1e-4
    )
    bank.save(tmp_path)
    loaded = Bank.load(tmp_path, "pca", CPU)
    torch.testing.assert_close(loaded.project(patches), bank.vectors)
    with pytest.raises(ConfigError, match="pca_dim"):
        build_bank(patches, cfg(bank="pca", pca_dim=13), 0, CPU)


def test_kmeans_bank_is_seeded_and_capped(patches):
    a = build_bank(patches, cfg(bank="kmeans", k=8), 0, CPU).vectors
    b = build_bank(patches, cfg(bank="kmeans", k=8), 0, CPU).vectors
    assert a.shape == (8, 12) and torch.equal(a, b)
    assert torch.equal(build_bank(patches, cfg(bank="kmeans", k=500), 0, CPU).vectors, patches)


def _quantisation_error(x: np.ndarray, centroids: np.ndarray) -> float:
    """Mean squared distance of each row of ``x`` to its nearest centroid."""
    d2 = ((x[:, None, :] - centroids[None]) ** 2).sum(-1)
    return float(d2.min(1).mean())


def test_faiss_and_sklearn_kmeans_give_banks_of_the_same_shape_and_quality():
    pytest.importorskip("faiss")
    # Patches are a continuum with many more modes than the bank has centroids (300 vs k = 40).
    # (With k equal to the number of well-separated clusters, faiss's random init can leave two
    # centroids in one cluster where k-means++ would not; the bank is never used that way.)
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(300, 16)) * 2
    x = (centres[rng.integers(0, 300, 3000)] + rng.normal(size=(3000, 16))).astype(np.float32)
    fast = kmeans_centroids(x, 40, seed=7, clustering="faiss")
    again = kmeans_centroids(x, 40, seed=7, clustering="faiss")
    slow = kmeans_centroids(x, 40, seed=7, clustering="sklearn")
    assert fast.shape == slow.shape == (40, 16) and fast.dtype == slow.dtype == np.float32
    np.testing.assert_array_equal(fast, again)
    # Neither finds the optimum; their quantisation errors agree within a few per cent.
    errors = [_quantisation_error(x, c) for c in (fast, slow)]
    assert abs(errors[0] - errors[1]) / errors[1] < 0.05, errors
    bank = build_bank(torch.from_numpy(x), cfg(bank="kmeans", k=40), 7, CPU)
    assert bank.info == {"clustering": "faiss"} and torch.equal(
        bank.vectors, torch.from_numpy(fast)
    )


def test_bank_config_is_validated():
    with pytest.raises(ConfigError, match="'patchcore'.* bank: 'annoy' is not one of"):
        PatchCoreParams.from_entry({"kind": "patchcore", **cfg(bank="annoy").to_dict()})
    with pytest.raises(ConfigError, match="coreset"):
        build_method({"kind": "patchcore", "backbone": "x", "coreset": 0})
    with pytest.raises(ConfigError, match="fusion"):
        build_method({"kind": "patchcore", "backbone": "x", "fusion": "sum"})


@pytest.mark.parametrize("bank", BANKS)
def test_patchcore_ranks_planted_anomalies_first_with_every_bank(sets, tmp_path, bank):
    train, test = sets
    entry = {"kind": "patchcore", "backbone": "x", "bank": bank, "coreset": 0.5, "k": 40}
    method = build_method({**entry, "pca_dim": 6, "fusion": "adaptive"}, device="cpu")
    summary = method.fit(train, tmp_path)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["bank"]["kind"] == bank and state["fusion"]["mode"] == "adaptive"
    assert state["feature_dim"] == (6 if bank == "pca" else 12) == summary["bank"]["dim"]
    scores, maps = method.score(tmp_path, test, (20, 20))
    assert maps.shape == (8, 20, 20) and np.isfinite(scores).all()
    assert scores[4:].min() > scores[:4].max()


@pytest.mark.parametrize("fusion", ["concat", {"mode": "single", "layer": 0}])
def test_patchcore_faiss_and_torch_backends_score_alike(sets, tmp_path, fusion):
    pytest.importorskip("faiss")
    train, test = sets
    entry = {"kind": "patchcore", "backbone": "x", "coreset": 0.3, "num_nn": 3, "fusion": fusion}
    build_method(entry).fit(train, tmp_path)
    results = [
        build_method({**entry, "knn_backend": b}).score(tmp_path, test, (20, 20))
        for b in ("faiss", "torch")
    ]
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-4)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-4, atol=1e-5)


def test_patchcore_refuses_features_from_another_config(sets, tmp_path):
    train, test = sets
    method = build_method({"kind": "patchcore", "backbone": "x", "coreset": 0.2})
    method.fit(train, tmp_path)
    other = feature_inputs(np.asarray(test.features.features, np.float32), [4, 8], "other")
    with pytest.raises(CacheError, match="different backbone config"):
        method.score(tmp_path, other, (20, 20))


def test_kmeans_clustering_is_the_configured_one_never_what_is_installed(patches, monkeypatch):
    import iadbench.methods.banks as banks

    monkeypatch.setattr(banks, "_faiss", lambda: None)
    a = build_bank(patches, cfg(bank="kmeans", k=8, kmeans="sklearn"), 0, CPU)
    b = build_bank(patches, cfg(bank="kmeans", k=8, kmeans="sklearn"), 0, CPU)
    assert a.info == {"clustering": "sklearn"} and a.vectors.shape == (8, 12)
    assert torch.equal(a.vectors, b.vectors)
    with pytest.raises(ConfigError, match="install the faiss extra .* or set kmeans: sklearn"):
        build_bank(patches, cfg(bank="kmeans", k=8), 0, CPU)
    with pytest.raises(ConfigError, match=r"kmeans: 'auto' is not one of \['faiss', 'sklearn'\]"):
        PatchCoreParams.from_entry(cfg(bank="kmeans", kmeans="auto").to_dict())


# --- the paper's Eq. 7 image-score weight, by hand -----------------------------------------------

TOY_BANK = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0]], np.float32)


def test_eq7_weight_matches_a_numpy_hand_computation():
    from iadbench.methods.knn import KnnIndex
    from iadbench.methods.patchcore.method import reweight

    query = np.array([0.9, 0.2], np.float32)
    # m*: the bank element nearest the query ([1, 0]); its b = 3 nearest bank elements are
    # itself (0), [0, 0] (1) and [0, 2] (sqrt 5); w = 1 - softmax(|query - those|)[0].
    m_star = int(np.argmin(np.linalg.norm(TOY_BANK - query, axis=1)))
    assert m_star == 1
    support = TOY_BANK[[1, 0, 2]]
    d = np.linalg.norm(support - query, axis=1).astype(np.float64)
    expected = 1.0 - np.exp(d[0]) / np.exp(d).sum()
    index = KnnIndex(torch.from_numpy(TOY_BANK), backend="torch", device="cpu")
    got = reweight(torch.from_numpy(query), m_star, index, 3)
    assert got == pytest.approx(expected, rel=1e-6)
    # One neighbour: no reweighting (anomalib), not 1 - softmax of one distance = 0.
    assert reweight(torch.from_numpy(query), m_star, index, 1) == 1.0


@pytest.mark.parametrize("neighbors", [0, 1])
def test_one_reweight_neighbour_keeps_the_unweighted_max(tmp_path, neighbors):
    train = feature_inputs(TOY_BANK.reshape(1, 2, 2, 2), [2])
    test = np.array([[[0.9, 0.2], [0.0, 0.0]], [[4.0, 3.0], [0.0, 2.5]]], np.float32)
    entry = {
        "kind": "patchcore", "backbone": "x", "bank": "full", "fusion": "concat",
        "image_score": "patch_max", "sigma": 0, "reweight_neighbors": neighbors,
        "knn_backend": "torch",
    }  # fmt: skip
    method = build_method(entry, device="cpu")
    method.fit(train, tmp_path)
    scores, _ = method.score(tmp_path, feature_inputs(test.reshape(1, 2, 2, 2), [2]), (4, 4))
    # The fp16 store rounds the features; the max nearest-bank distance, by hand.
    patches = test.reshape(-1, 2).astype(np.float16).astype(np.float64)
    bank = TOY_BANK.astype(np.float16).astype(np.float64)
    nearest = np.linalg.norm(patches[:, None] - bank[None], axis=2).min(1)
    assert scores[0] == pytest.approx(nearest.max(), rel=1e-5) and nearest.max() > 0
