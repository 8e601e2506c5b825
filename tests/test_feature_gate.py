"""Feature gate (issue 25): pooling, the head's forward pass, calibration on val, cached synthetic
features, and that the gate adds no backbone job to the DAG."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from test_workflow import TINY, planned_rules, write_config

from iadbench.errors import DataError
from iadbench.features.store import FeatureSet
from iadbench.features.synthetic import synthetic_images, synthetic_rng
from iadbench.methods import build_method
from iadbench.methods.base import MethodInputs
from iadbench.methods.feature_gate.method import head_margin, pool

GATE = {"kind": "feature_gate", "backbone": "b"}
META = {"config_hash": "abc", "category": "c"}


def feature_set(features: np.ndarray, labels, split: str) -> FeatureSet:
    n = len(features)
    index = pd.DataFrame(
        {"sample_id": [f"{split}{i}" for i in range(n)], "label": labels, "category": "c"}
    )
    return FeatureSet(features.astype(np.float16), index, {**META, "split": split})


def test_pooling_is_the_mean_and_the_max_over_patches():
    x = np.arange(2 * 2 * 2 * 3, dtype=np.float32).reshape(2, 2, 2, 3)
    x[1, 0, 1] = [100.0, -5.0, 0.0]
    # image 1's patches: [12 13 14] [100 -5 0] [18 19 20] [21 22 23], by hand
    mean_1 = [(12 + 100 + 18 + 21) / 4, (13 - 5 + 19 + 22) / 4, (14 + 0 + 20 + 23) / 4]
    np.testing.assert_allclose(pool(x, "mean_max")[1], [*mean_1, 100.0, 22.0, 23.0])
    np.testing.assert_allclose(pool(x, "mean")[0], [4.5, 5.5, 6.5])
    np.testing.assert_allclose(pool(x, "max")[0], [9.0, 10.0, 11.0])


def test_head_margin_is_a_standardised_linear_or_relu_mlp_pass():
    x = np.array([[1.0, 3.0], [3.0, -1.0]])
    head = {"mean": np.array([1.0, 1.0]), "scale": np.array([2.0, 1.0]),
            "w1": np.array([[1.0], [-2.0]]), "b1": np.array([0.5])}  # fmt: skip
    # z = [[0, 2], [1, -2]]; margins 0 - 4 + 0.5 and 1 + 4 + 0.5
    np.testing.assert_allclose(head_margin(head, x), [-3.5, 5.5])
    mlp = {**head, "w1": np.array([[1.0, -1.0], [1.0, 1.0]]), "b1": np.array([0.0, 0.0]),
           "w2": np.array([[2.0], [1.0]]), "b2": np.array([-1.0])}  # fmt: skip
    # hidden = relu([[2, 2], [-1, -3]]) = [[2, 2], [0, 0]]; margins 4 + 2 - 1, -1
    np.testing.assert_allclose(head_margin(mlp, x), [5.0, -1.0])


def gate_inputs(rng: np.random.Generator, shift: float = 6.0):
    """Normal features ~ N(0, 1); anomalies have one patch shifted by ``shift`` in channel 0."""

    def images(n: int, anomalous: np.ndarray) -> np.ndarray:
        x = rng.normal(size=(n, 3, 3, 4))
        x[anomalous, 1, 1, 0] += shift
        return x

    train = feature_set(images(20, np.zeros(20, bool)), 0, "train")
    synthetic = feature_set(images(20, np.ones(20, bool)), 1, "synthetic")
    val_labels = np.r_[np.zeros(10, int), np.ones(10, int)]
    val = feature_set(images(20, val_labels == 1), val_labels, "val")
    return MethodInputs(train.index, train, cached={"features": {"synthetic": synthetic,
                                                                 "val": val}})  # fmt: skip


@pytest.mark.parametrize("hidden", [None, 8])
def test_the_gate_learns_the_synthetic_class_and_scores_the_calibrated_head(tmp_path, hidden):
    method = build_method({**GATE, "hidden": hidden})
    state = method.fit(gate_inputs(np.random.default_rng(0)), tmp_path)
    assert state["n_train_normal"] == 20 and state["n_train_anomalous"] == 20
    assert state["train_accuracy"] > 0.9 and state["temperature"] > 0
    rng = np.random.default_rng(1)
    test_x = rng.normal(size=(6, 3, 3, 4))
    test_x[3:, 1, 1, 0] += 6.0
    test = feature_set(test_x, [0, 0, 0, 1, 1, 1], "test")
    p, maps, columns = method.score(tmp_path, MethodInputs(test.index, test), (8, 8))
    assert maps is None
    with np.load(tmp_path / "head.npz") as data:  # the saved head, applied by hand
        head = {k: data[k] for k in data.files}
    z = (pool(test.features, "mean_max") - head["mean"]) / head["scale"]
    if hidden:
        z = np.maximum(z @ head["w1"] + head["b1"], 0)
        margin = (z @ head["w2"] + head["b2"]).ravel()
    else:
        margin = (z @ head["w1"] + head["b1"]).ravel()
    np.testing.assert_allclose(columns["margin"], margin)
    np.testing.assert_allclose(p, expit(margin / state["temperature"]))
    assert p[3:].mean() > p[:3].mean()


def test_the_gate_needs_its_cached_synthetic_and_val_features(tmp_path):
    inputs = gate_inputs(np.random.default_rng(0))
    del inputs.cached["features"]["synthetic"]
    with pytest.raises(DataError, match="synthetic features"):
        build_method(GATE).fit(inputs, tmp_path)


def test_synthetic_images_are_reproducible_and_differ_by_copy():
    normal = [np.random.default_rng(i).integers(0, 256, (32, 32, 3), np.uint8) for i in range(3)]
    a, recipes = synthetic_images(normal, "mixed", 2, seed=4)
    b, _ = synthetic_images(normal, "mixed", 2, seed=4)
    assert len(a) == 6 and set(recipes) <= {"cutpaste", "scar", "perlin", "nsa"}
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], a[1])  # two copies of image 0
    assert synthetic_rng(4, 0, 1).random() == np.random.default_rng([4, 0, 1]).random()


CONFIG = copy.deepcopy(TINY)
CONFIG["datasets"]["demo"]["val_split"] = {"fraction": 0.5, "seed": 0}


def test_the_feature_gate_adds_no_backbone_job_to_the_dag(tmp_path):
    """Only the synthetic anomalies are extracted once more; every other feature is shared."""
    write_config(tmp_path, CONFIG)
    alone = planned_rules(tmp_path)
    config = copy.deepcopy(CONFIG)
    config["methods"].update(
        fgate={"kind": "feature_gate", "backbone": "lite0"},
        cascade={"kind": "cascade", "uses": {"gate": "fgate", "heatmap": "pc"},
                 "max_call_rate": 0.3},
    )  # fmt: skip
    write_config(tmp_path, config)
    together = planned_rules(tmp_path)
    categories = len(CONFIG["datasets"]["demo"]["categories"])
    assert together["extract"] == alone["extract"]  # train, val, test: the heatmap method's
    assert together["extract_synthetic"] == categories and "extract_synthetic" not in alone
    assert together["fit"] == alone["fit"] + 2 * categories  # the gate's and the cascade's


def test_a_shared_backbone_pass_is_charged_once_in_the_cascade_latency(tmp_path):
    from iadbench.pipeline.latency import summarise_latency

    ids = ["a", "b", "c"]
    common = {"sample_id": ids, "device": "cpu", "batch_size": 1}
    gate = {**common, "ms": [10.0, 12.0, 11.0], "backbone_ms": [9.0, 11.0, 10.0]}
    pd.DataFrame(gate).to_parquet(tmp_path / "gate.parquet")
    pd.DataFrame({**common, "ms": [30.0, 31.0, 32.0]}).to_parquet(tmp_path / "heat.parquet")
    pd.DataFrame({"sample_id": ids, "route": ["gate", "heatmap", "heatmap"]}).to_parquet(
        tmp_path / "scores.parquet"
    )
    item = {"dataset": "d", "method": "casc", "category": "c", "kind": "cascade",
            "gate": str(tmp_path / "gate.parquet"), "heatmap": str(tmp_path / "heat.parquet"),
            "scores": str(tmp_path / "scores.parquet")}  # fmt: skip
    table = summarise_latency(
        [item, {**item, "method": "shared", "shared_backbone": True}], tmp_path / "lat.csv"
    )
    # separate passes: 10, 12 + 31, 11 + 32; shared: 10, 12 + (31 - 11), 11 + (32 - 10)
    by = table.set_index("method")["mean_ms"]
    assert by["casc"] == pytest.approx((10 + 43 + 43) / 3)
    assert by["shared"] == pytest.approx((10 + 32 + 33) / 3)
