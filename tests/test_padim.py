"""PaDiM: Mahalanobis against a direct numpy computation, seeded subsets, anomaly ranking."""

import json

import numpy as np
import pytest
import torch
from conftest import feature_inputs

from iadbench.errors import ConfigError
from iadbench.methods import build_method
from iadbench.methods.padim import method as padim
from iadbench.methods.padim.method import choose_channels, gaussian_fit, mahalanobis


@pytest.fixture(scope="module")
def gaussian():
    """30 training images on a 3x4 grid of 6-d features, correlated differently per position."""
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(12, 6, 6))
    train = np.einsum("npd,pde->npe", rng.normal(size=(30, 12, 6)), mixing) + 2.0
    test = np.einsum("npd,pde->npe", rng.normal(size=(6, 12, 6)), mixing) + 2.0
    return train.reshape(30, 3, 4, 6), test.reshape(6, 3, 4, 6)


def test_mahalanobis_matches_numpy(gaussian):
    train, test = gaussian
    x_train = torch.from_numpy(train.reshape(30, 12, 6).astype(np.float32))
    mean, inv = gaussian_fit(x_train, 0.01, torch.device("cpu"))
    dist = mahalanobis(torch.from_numpy(test.reshape(6, 12, 6).astype(np.float32)), mean, inv)
    flat_train, flat_test = train.reshape(30, 12, 6), test.reshape(6, 12, 6)
    for p in range(12):
        mu = flat_train[:, p].mean(0)
        cov_inv = np.linalg.inv(np.cov(flat_train[:, p], rowvar=False) + 0.01 * np.eye(6))
        delta = flat_test[:, p] - mu
        expected = np.sqrt(np.einsum("bd,de,be->b", delta, cov_inv, delta))
        np.testing.assert_allclose(dist[:, p].numpy(), expected, rtol=1e-3)


def test_channel_subset_is_seeded_and_capped():
    a, b, c = (choose_channels(50, 10, s) for s in (7, 7, 8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(set(a)) == 10 and list(a) == sorted(a)
    assert np.array_equal(choose_channels(5, 100, 0), np.arange(5))


def test_padim_scores_planted_anomalies_highest(gaussian, tmp_path):
    train, test = gaussian
    test = test.copy()
    test[3:, 1, 2] += 20.0
    method = build_method(
        {
            "kind": "padim",
            "backbone": "x",
            "n_features": 4,
            "seed": 1,
            "fusion": "adaptive",
            "sigma": 1,
        }
    )
    method.fit(feature_inputs(train, [2, 4]), tmp_path)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["feature_dim"] == 4 and state["fusion"]["output_dim"] == 6
    assert state["channels"] == choose_channels(6, 4, 1).tolist()
    scores, maps = method.score(tmp_path, feature_inputs(test, [2, 4]), (12, 16))
    assert maps.shape == (6, 12, 16) and np.isfinite(maps).all()
    assert scores[3:].min() > scores[:3].max()
    peak = np.unravel_index(maps[3:].mean(0).argmax(), (12, 16))
    assert peak[0] // 4 == 1 and peak[1] // 4 == 2


def test_padim_refuses_oversized_state_and_bad_config(gaussian, tmp_path, monkeypatch):
    monkeypatch.setattr(padim, "MAX_STATE_BYTES", 1000)
    method = build_method({"kind": "padim", "backbone": "x"})
    with pytest.raises(ConfigError, match="lower n_features"):
        method.fit(feature_inputs(gaussian[0]), tmp_path)
    with pytest.raises(ConfigError, match="epsilon"):
        build_method({"kind": "padim", "backbone": "x", "epsilon": 0})


def test_padim_end_to_end_on_a_hand_made_tensor(tmp_path):
    """3 training images x 2 positions x 2 channels; the score is numpy's Mahalanobis distance."""
    train = np.array(
        [
            [[[1.0, 2.0], [0.0, -1.0]]],
            [[[2.0, 1.5], [1.0, 0.5]]],
            [[[4.0, 3.0], [0.5, 0.0]]],
        ]
    )  # (3 images, 1 x 2 grid, 2 channels), exact in fp16
    test = np.array([[[[3.0, 1.0], [2.0, 2.0]]], [[[1.5, 2.5], [-1.0, 0.25]]]])
    method = build_method({"kind": "padim", "backbone": "x", "sigma": 0})
    method.fit(feature_inputs(train), tmp_path)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["channels"] == [0, 1]  # null n_features -> 100 for an unknown model, capped at 2
    scores, maps = method.score(tmp_path, feature_inputs(test), (1, 2))
    expected = np.empty((2, 2))
    for p in range(2):
        x = train[:, 0, p]
        inv = np.linalg.inv(np.cov(x, rowvar=False) + 0.01 * np.eye(2))
        delta = test[:, 0, p] - x.mean(0)
        expected[:, p] = np.sqrt(np.einsum("bd,de,be->b", delta, inv, delta))
    np.testing.assert_allclose(maps[:, 0], expected, rtol=1e-4)
    np.testing.assert_allclose(scores, expected.max(1), rtol=1e-4)


def test_n_features_default_follows_the_backbone_model(tmp_path):
    from iadbench.methods.padim.params import default_n_features

    assert default_n_features("resnet18") == 100
    assert default_n_features("wide_resnet50_2") == 550
    assert default_n_features("efficientnet_lite0") == 100
    rng = np.random.default_rng(0)
    feats = feature_inputs(rng.normal(size=(3, 1, 2, 600)))
    feats.features.meta["model"] = "wide_resnet50_2"
    method = build_method({"kind": "padim", "backbone": "x", "seed": 3})
    method.fit(feats, tmp_path)
    state = json.loads((tmp_path / "state.json").read_text())
    assert (
        state["feature_dim"] == 550 and state["channels"] == choose_channels(600, 550, 3).tolist()
    )
    explicit = build_method({"kind": "padim", "backbone": "x", "n_features": 7})
    explicit.fit(feats, tmp_path / "explicit")
    assert json.loads((tmp_path / "explicit" / "state.json").read_text())["feature_dim"] == 7
