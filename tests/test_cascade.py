"""Classifier gate and gate -> heatmap cascade: routing, calibration order, batch independence,
single-class refusal, degenerate scores, and the whole thing end to end on the demo."""

from __future__ import annotations

import copy
import json
import logging

import numpy as np
import pandas as pd
import pytest
from test_workflow import TINY, planned_rules, snakemake, write_config

from iadbench.data.manifest import build_manifest
from iadbench.errors import ConfigError, DataError
from iadbench.methods import build_method
from iadbench.methods.base import MethodInputs
from iadbench.methods.cascade.method import route

CASCADE = {"kind": "cascade", "uses": {"gate": "g", "heatmap": "h"}}


def inputs(labels, gate, heatmap) -> MethodInputs:
    ids = [f"s{i}" for i in range(len(labels))]
    index = pd.DataFrame({"sample_id": ids, "label": labels, "category": "c"})
    tables = {
        role: pd.DataFrame({"sample_id": ids[::-1], "score": np.asarray(values)[::-1]})
        for role, values in (("gate", gate), ("heatmap", heatmap))
    }  # reversed on purpose: the cascade must align by sample id
    return MethodInputs(index=index, scores=tables)


# 4 normal, 4 anomalous. The heatmap method separates them perfectly; the gate is sure only at
# the extremes: its own best val threshold (0.95) misses the anomaly at 0.2.
LABELS = [0, 0, 0, 0, 1, 1, 1, 1]
GATE = [0.05, 0.05, 0.3, 0.4, 0.95, 0.95, 0.95, 0.2]
HEATMAP = [1.0, 2.0, 3.0, 4.0, 10.0, 11.0, 12.0, 13.0]


def test_route_keeps_confident_gate_scores_and_sends_the_band_to_the_heatmap():
    final, routed = route(np.array([0.01, 0.3, 0.9]), np.array([0.5, 0.6, 0.7]), 0.1, 0.8)
    assert routed.tolist() == [False, True, False]
    assert final.tolist() == [0.01, 0.6, 0.9]


def test_the_fewest_calls_that_keep_recall_are_chosen_and_applied_unchanged(tmp_path):
    cfg = {**CASCADE, "grid_low": [0.1, 0.6], "grid_high": [0.4, 0.9, 0.99]}
    method = build_method(cfg)
    state = method.fit(inputs(LABELS, GATE, HEATMAP), tmp_path)
    # (0.1, 0.4) and (0.1, 0.9) both route the three uncertain images (0.2, 0.3, 0.4) and reach
    # recall 1; (0.6, 0.9) routes none and misses one anomaly; ties go to the smaller pair.
    assert (state["t_low"], state["t_high"]) == (0.1, 0.4)
    assert state["val"]["heatmap_call_rate"] == pytest.approx(3 / 8)
    assert state["val"]["recall"] == 1.0 and not state["degenerate_scores"]
    sweep = pd.read_csv(tmp_path / "sweep.csv")
    assert len(sweep) == 5 and sweep["chosen"].sum() == 1
    test = inputs([0, 1, 1], [0.05, 0.25, 0.97], [1.5, 12.5, 0.0])
    final, maps, columns = method.score(tmp_path, test, (8, 8))
    assert maps is None and columns["route"].tolist() == ["gate", "heatmap", "gate"]
    assert final[0] == 0.05 and final[2] == 0.97 and columns["p_heatmap"][1] > 0.5
    assert (final >= state["threshold"]).tolist() == [False, True, True]


def test_a_configured_pair_skips_the_search(tmp_path):
    state = build_method({**CASCADE, "thresholds": [0.6, 0.9]}).fit(
        inputs(LABELS, GATE, HEATMAP), tmp_path
    )
    assert (state["t_low"], state["t_high"]) == (0.6, 0.9)
    assert state["val"]["heatmap_call_rate"] == 0.0


def test_collapsed_scores_are_flagged_and_warned(tmp_path, caplog):
    gate = [0.0005, 0.0006, 0.0005, 0.0007, 0.0006, 0.0005, 0.0006, 0.0007]
    with caplog.at_level(logging.WARNING):
        state = build_method(CASCADE).fit(inputs(LABELS, gate, HEATMAP), tmp_path)
    assert state["degenerate_scores"] is True
    assert "degenerate val scores" in caplog.text
    assert pd.read_csv(tmp_path / "sweep.csv")["degenerate_scores"].all()


def test_calibration_needs_both_classes_on_val(tmp_path):
    with pytest.raises(ValueError, match="both classes"):
        build_method(CASCADE).fit(inputs([0] * 4, GATE[:4], HEATMAP[:4]), tmp_path)


@pytest.fixture
def widget(tiny_mvtec):
    cfg = {"root": str(tiny_mvtec), "categories": ["widget"], "resize": 32, "crop": 32,
           "val_split": {"fraction": 0.5, "seed": 0}}  # fmt: skip
    rows = build_manifest("tiny", cfg)
    return rows, {"resize": 32, "crop": 32}


GATE_CFG = {"kind": "classifier", "weights": "random", "epochs": 1, "batch_size": 4}


def test_a_classifier_training_set_with_one_class_is_an_error(widget, tmp_path):
    rows, dataset = widget
    train = MethodInputs(index=rows[rows["split"] == "train"], rows=rows, dataset=dataset)
    method = build_method({**GATE_CFG, "anomalies": "labelled"})
    with pytest.raises(DataError, match=r"split train_labelled.*0 normal, 0 anomalous"):
        method.fit(train, tmp_path)


def test_gate_scores_do_not_depend_on_batch_mates(widget, tmp_path):
    rows, dataset = widget
    train = MethodInputs(index=rows[rows["split"] == "train"], rows=rows, dataset=dataset)
    method = build_method(GATE_CFG)
    state = method.fit(train, tmp_path)
    assert state["n_train_normal"] == 3 and state["n_train_anomalous"] == 3
    test = rows[rows["split"] == "test"].reset_index(drop=True)
    together, maps, columns = method.score(tmp_path, MethodInputs(test, dataset=dataset), (8, 8))
    assert maps is None and ((together >= 0) & (together <= 1)).all()
    for i in range(len(test)):
        alone, _, _ = method.score(tmp_path, MethodInputs(test.iloc[[i]], dataset=dataset), (8, 8))
        assert alone[0] == pytest.approx(together[i], abs=1e-6)
    routes = [route(together, together, 0.2, 0.8)[1], route(together[::-1], together, 0.2, 0.8)[1]]
    assert routes[0].tolist() == routes[1][::-1].tolist()


CONFIG = copy.deepcopy(TINY)
CONFIG["datasets"]["demo"].update(
    categories=["brick"],
    demo={"seed": 0, "image_size": 64, "n_train": 8, "n_test_good": 4, "n_per_defect": 2},
    val_split={"fraction": 0.4, "seed": 0},
)
CONFIG["datasets"]["mixed"] = {"layout": "union", "sources": ["demo"], "resize": 64, "crop": 64}
CONFIG["methods"] = {
    "gate": {"kind": "classifier", "epochs": 2, "batch_size": 8, "datasets": ["demo"]},
    "pc": {"kind": "patchcore", "backbone": "lite0", "coreset": 0.2},
    "cascade": {"kind": "cascade", "uses": {"gate": "gate", "heatmap": "pc"},
                "datasets": ["demo"]},
}  # fmt: skip
CONFIG["latency"] = {"images": 3}


@pytest.mark.e2e
def test_cascade_end_to_end_on_the_demo(tmp_path):
    write_config(tmp_path, CONFIG)
    snakemake(tmp_path)
    summary = pd.read_csv(tmp_path / "results/summary/metrics.csv")
    rows = summary[(summary["dataset"] == "demo") & (summary["category"] == "brick")]
    by_method = rows.set_index("method")
    assert set(by_method.index) == {"gate", "pc", "cascade"}
    assert by_method.loc["cascade", "kind"] == "cascade"  # every row says what produced it
    assert np.isnan(by_method.loc["cascade", "pixel_auroc"])  # no maps: n/a, never faked
    assert np.isnan(by_method.loc["gate", "pixel_auroc"]) and by_method.loc["pc", "pixel_auroc"] > 0
    assert 0 <= by_method.loc["cascade", "heatmap_call_rate"] <= 1
    assert by_method[["threshold", "f1", "recall"]].notna().all().all()
    assert by_method.loc["gate", "ece"] >= 0 and "ece_uncalibrated" in by_method.columns
    state = json.loads((tmp_path / "results/demo/models/cascade/brick/state.json").read_text())
    assert by_method.loc["cascade", "threshold"] == pytest.approx(state["threshold"])
    latency = pd.read_csv(tmp_path / "results/summary/latency.csv")
    assert set(latency["method"]) == {"gate", "pc", "cascade"} and (latency["mean_ms"] > 0).all()
    sweep = pd.read_csv(tmp_path / "results/summary/cascade_sweep.csv")
    assert sweep["chosen"].sum() == 1
    mixed = pd.read_parquet(tmp_path / "results/mixed/manifest.parquet")
    assert set(mixed["source"]) == {"demo"} and mixed["sample_id"].str.startswith("demo/").all()
    assert "mixed" in set(summary["dataset"])
    config = copy.deepcopy(CONFIG)
    config["methods"]["cascade"]["max_recall_loss"] = 0.1
    write_config(tmp_path, config)
    plan = planned_rules(tmp_path)
    assert plan.get("fit") == 1 and "extract" not in plan and "latency" not in plan


def hand_ece(p, y, bins=15):
    """Guo et al.'s binary ECE written out: confidence max(p, 1 - p), equal-width bins."""
    p, y = np.asarray(p, float), np.asarray(y)
    conf, correct = np.maximum(p, 1 - p), ((p >= 0.5) == (y == 1)).astype(float)
    k = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    return sum((k == b).mean() * abs(correct[k == b].mean() - conf[k == b].mean())
               for b in np.unique(k))  # fmt: skip


def test_the_heatmap_ece_is_kept_before_and_after_calibration(tmp_path):
    # Raw heatmap scores already in [0, 1] (a probability before calibration, e.g. a CLIP kind).
    labels = [0, 1, 1, 1]
    raw = [0.1, 0.25, 0.7, 0.95]
    # By hand: confidences 0.9, 0.75, 0.7, 0.95 fall in four different bins of width 1/15;
    # correct = 1, 0, 1, 1; ECE = (0.1 + 0.75 + 0.3 + 0.05) / 4 = 0.3.
    method = build_method({**CASCADE, "thresholds": [0.3, 0.6]})
    state = method.fit(inputs(labels, [0.1, 0.4, 0.5, 0.9], raw), tmp_path)
    assert state["val_heatmap_ece_raw"] == pytest.approx(0.3)
    _, _, columns = method.score(tmp_path, inputs(labels, [0.1, 0.4, 0.5, 0.9], raw), (8, 8))
    assert columns["p_heatmap_raw"].tolist() == raw
    calibrated = columns["p_heatmap"]  # the same val images: the state's ECE after calibration
    assert not np.allclose(calibrated, raw)
    assert state["val_heatmap_ece"] == pytest.approx(hand_ece(calibrated, labels))
    # Distances (PatchCore) are no probabilities: no ECE before calibration, not a made-up one.
    state = method.fit(inputs(LABELS, GATE, HEATMAP), tmp_path)
    assert state["val_heatmap_ece_raw"] is None and state["val_heatmap_ece"] >= 0
    _, _, columns = method.score(tmp_path, inputs(LABELS, GATE, HEATMAP), (8, 8))
    assert "p_heatmap_raw" not in columns and "p_heatmap" in columns


# --- issue 25: the ranking-preserving score and the call-rate budget ------------------------


def test_a_routed_image_scores_its_calibrated_heatmap_probability(tmp_path):
    # Isotonic regression of perfectly separated val scores is a step, by hand: raw <= 4 (the
    # normals) -> 0, raw >= 10 (the anomalies) -> 1.
    method = build_method({**CASCADE, "calibration": "isotonic", "thresholds": [0.1, 0.9]})
    method.fit(inputs(LABELS, GATE, HEATMAP), tmp_path)
    test = inputs([0, 1, 0, 1], [0.5, 0.5, 0.02, 0.97], [2.0, 12.5, 11.0, 1.0])
    final, _, columns = method.score(tmp_path, test, (8, 8))
    assert columns["route"].tolist() == ["heatmap", "heatmap", "gate", "gate"]
    assert final.tolist() == [0.0, 1.0, 0.02, 0.97]  # heatmap's step for the two routed ones
    assert columns["p_heatmap"][:2].tolist() == [0.0, 1.0]


def test_a_call_budget_picks_the_best_band_that_fits(tmp_path):
    # grid (0.1, 0.9) routes 0.2, 0.3 and 0.4: 3/8 > the budget of 2 images. With isotonic
    # calibration (heatmap probability 0 for the normals, 1 for the anomalies), by hand:
    # [0.2, 0.2] (one call) already separates val (normals 0.05, 0.05, 0.3, 0.4; anomalies
    # 0.95 x 3, 1): F1 1; so do the two-call bands [0.2, 0.3] and [0.3, 0.4]; [0.05, 0.05]
    # leaves the anomaly at 0.2 below the normals at 0.3 and 0.4. Ties spend the budget, then
    # take the lower band: [0.2, 0.3].
    cfg = {**CASCADE, "calibration": "isotonic", "grid_low": [0.1], "grid_high": [0.9]}
    state = build_method({**cfg, "max_call_rate": 0.25}).fit(
        inputs(LABELS, GATE, HEATMAP), tmp_path
    )
    assert (state["t_low"], state["t_high"]) == (0.2, 0.3)
    assert state["val"]["heatmap_call_rate"] == pytest.approx(2 / 8)
    assert state["val"]["f1"] == 1.0 and state["band_selection"] == "budget"
    assert state["val_recall_loss"] == 0.0
    with pytest.raises(ConfigError, match="max_call_rate"):  # 0.1 x 8 images < 1
        build_method({**cfg, "max_call_rate": 0.1}).fit(inputs(LABELS, GATE, HEATMAP), tmp_path)


@pytest.mark.parametrize("budget", [0.1, 0.2, 0.3, 0.5])
def test_a_call_budget_is_never_exceeded_on_val(tmp_path, budget):
    rng = np.random.default_rng(int(budget * 100))
    labels = np.r_[np.zeros(30, int), np.ones(20, int)]
    gate = np.round(np.clip(rng.normal(0.3 + 0.4 * labels, 0.25), 0, 1), 2)  # ties on purpose
    heatmap = rng.normal(labels * 2.0, 1.0)
    state = build_method({**CASCADE, "max_call_rate": budget}).fit(
        inputs(labels, gate, heatmap), tmp_path
    )
    routed = (gate >= state["t_low"]) & (gate <= state["t_high"])
    assert routed.sum() <= np.floor(budget * len(labels))
    assert state["val"]["heatmap_call_rate"] == pytest.approx(routed.mean())
    sweep = pd.read_csv(tmp_path / "sweep.csv")
    within = sweep[sweep["heatmap_call_rate"] <= budget + 1e-12]
    assert state["val"]["f1"] == pytest.approx(within["f1"].max(), abs=1e-6)


def test_a_budget_with_fixed_thresholds_is_refused():
    with pytest.raises(ConfigError, match="max_call_rate"):
        build_method({**CASCADE, "thresholds": [0.2, 0.8], "max_call_rate": 0.3})
