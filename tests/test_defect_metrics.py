"""Mask-less, multi-defect results: per-defect AUROCs and fused methods' component scores."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from iadbench.metrics import evaluate_category, summarise, to_markdown
from iadbench.metrics.defects import defect_columns, per_defect_auroc
from iadbench.metrics.operating import at_threshold, threshold_max_f1
from iadbench.pipeline.evaluation import (
    compute_metrics,
    compute_micro,
    operating_point,
    summarise_results,
)

# Four normal samples, two defect types; the type of a normal sample is whatever a layout says.
LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 1])
SCORES = np.array([0.1, 0.2, 0.3, 0.4, 0.35, 0.9, 0.25, 0.3])
TYPES = np.array(["good", "good", "ok", "good", "porosity", "porosity", "spatter", "spatter"])


def test_per_defect_auroc_by_hand_and_against_sklearn():
    out = per_defect_auroc(LABELS, SCORES, TYPES)
    # porosity 0.35 beats 3 normals, 0.9 all 4 -> 7/8; spatter 0.25 beats 2, 0.3 beats 2 and
    # ties 1 (half) -> 4.5/8.
    assert out == {"porosity": pytest.approx(7 / 8), "spatter": pytest.approx(4.5 / 8)}
    for defect, value in out.items():
        keep = (LABELS == 0) | (TYPES == defect)
        assert value == pytest.approx(roc_auc_score(LABELS[keep], SCORES[keep]))


def test_defect_columns_need_two_types_and_normals():
    assert defect_columns(LABELS, SCORES, TYPES) == {
        "auroc_porosity": pytest.approx(7 / 8),
        "auroc_spatter": pytest.approx(4.5 / 8),
    }
    one_type = np.where(LABELS == 1, "porosity", "good")
    assert defect_columns(LABELS, SCORES, one_type) == {}  # would repeat image_auroc
    assert defect_columns(LABELS, SCORES, None) == {}
    no_normals = defect_columns(LABELS[4:], SCORES[4:], TYPES[4:])
    assert set(no_normals) == {"auroc_porosity", "auroc_spatter"}
    assert all(math.isnan(v) for v in no_normals.values())
    with pytest.raises(ValueError, match="defect_types"):
        per_defect_auroc(LABELS, SCORES, TYPES[:3])


def test_evaluate_category_without_masks_adds_defect_columns_and_no_pixel_numbers():
    row = evaluate_category(LABELS, SCORES, None, None, defect_types=TYPES)
    assert row["image_auroc"] == pytest.approx(roc_auc_score(LABELS, SCORES))
    assert row["auroc_spatter"] == pytest.approx(4.5 / 8)
    for key in ("pixel_auroc", "pixel_ap", "pixel_f1max", "aupro", "aupro_cflow200"):
        assert math.isnan(row[key])
    assert "auroc_porosity" not in evaluate_category(LABELS, SCORES, None, None)


def test_summarise_averages_a_defect_column_over_the_categories_that_have_it():
    per_cat = pd.DataFrame(
        {
            "dataset": ["d", "d", "d"],
            "method": ["m", "m", "m"],
            "category": ["a", "b", "c"],
            "image_auroc": [0.9, 0.8, 0.7],
            "auroc_crack": [0.6, 0.8, np.nan],
            "auroc_hole": [np.nan, np.nan, 0.5],
            "n_images": [4, 4, 4],
        }
    )
    micro = pd.DataFrame({"dataset": ["d"], "method": ["m"], "category": ["micro"],
                          "image_auroc": [0.75], "n_images": [12]})  # fmt: skip
    out = summarise(per_cat, micro)
    assert list(out.columns[-2:]) == ["auroc_crack", "auroc_hole"]
    macro = out[out["average"] == "macro"].iloc[0]
    assert macro["auroc_crack"] == pytest.approx(0.7) and macro["auroc_hole"] == 0.5
    assert math.isnan(out[out["average"] == "micro"].iloc[0]["auroc_crack"])
    md = to_markdown(out)
    headline, defects = md.split("## Per defect type")
    assert "auroc_" not in headline and "crack" not in headline
    assert "### d / a" in defects and "### d / c" in defects
    section_a = defects.split("### d / a")[1].split("###")[0]
    assert "| all    | crack   |" in section_a and "0.9000 | 0.6000" in section_a
    assert "Per defect type" not in to_markdown(out.drop(columns=["auroc_crack", "auroc_hole"]))


# ------------------------------------------------------------------ evaluation step


def _score_table(rng, n_good, per_type, shift):
    """Scores of a fused method and its two components; audio separates porosity only."""
    types = ["good"] * n_good + [t for t in ("porosity", "spatter") for _ in range(per_type)]
    label = np.array([t != "good" for t in types], dtype=int)
    porosity = np.array([t == "porosity" for t in types], dtype=float)
    audio = rng.normal(0, 1, len(types)) + 3 * porosity
    video = rng.normal(0, 1, len(types)) + shift * label
    return pd.DataFrame(
        {
            "sample_id": [f"s{shift}-{i}" for i in range(len(types))],
            "category": "weld",
            "label": label,
            "defect_type": types,
            "score": audio + video,
            "component_audio": audio,
            "component_video": video,
        }
    )


@pytest.fixture
def weld_results(tmp_path):
    """Metrics JSON of a mask-less fused method scored on test with a val split."""
    rng = np.random.default_rng(0)
    test, val = _score_table(rng, 12, 8, 1.5), _score_table(rng, 10, 6, 2.0)
    manifest = pd.concat([test, val])[["sample_id", "category", "label", "defect_type"]]
    manifest = manifest.assign(mask_path=None, note="")
    paths = {n: tmp_path / n for n in ("manifest.parquet", "test.parquet", "val.parquet")}
    manifest.to_parquet(paths["manifest.parquet"], index=False)
    test.to_parquet(paths["test.parquet"], index=False)
    val.to_parquet(paths["val.parquet"], index=False)
    maps = tmp_path / "maps.npy"
    np.save(maps, np.zeros((len(test), 0, 0), np.float32))  # a kind without maps
    record = {"dataset": "weld", "method": "late_fusion", "category": "weld", "split": "test",
              "kind": "late_fusion", "method_config": {"kind": "late_fusion", "seed": 0},
              "backbone": None, "train_on": None, "probabilities": False,
              "describe": {"fusion": "zscore"}}  # fmt: skip
    out = tmp_path / "metrics.json"
    cfg = {"resize": 8, "crop": 8}
    compute_metrics(paths["test.parquet"], maps, paths["manifest.parquet"], cfg, record, out,
                    val_scores=paths["val.parquet"])  # fmt: skip
    return dict(out=out, test=test, val=val, paths=paths, maps=maps, cfg=cfg)


def test_compute_metrics_scores_every_component_like_the_fused_score(weld_results):
    result = json.loads(weld_results["out"].read_text())
    test, val = weld_results["test"], weld_results["val"]
    assert set(result["components"]) == {"audio", "video"}
    for name, metrics in [("fused", result["metrics"]), *result["components"].items()]:
        column = "score" if name == "fused" else f"component_{name}"
        assert metrics["image_auroc"] == pytest.approx(roc_auc_score(test["label"], test[column]))
        for defect in ("porosity", "spatter"):
            keep = test["defect_type"].isin(["good", defect])
            expected = roc_auc_score(test["label"][keep], test[column][keep])
            assert metrics[f"auroc_{defect}"] == pytest.approx(expected)
        assert metrics["pixel_auroc"] is None or math.isnan(metrics["pixel_auroc"])
        threshold = threshold_max_f1(val["label"], val[column])
        assert metrics["threshold_from"] == "val" and metrics["threshold"] == threshold
        assert metrics["f1"] == pytest.approx(
            at_threshold(test["label"], test[column], threshold)["f1"]
        )
    audio = result["components"]["audio"]
    assert audio["auroc_porosity"] > 0.9 > audio["auroc_spatter"]


def test_a_component_ignores_the_fitted_threshold_and_needs_its_val_column(weld_results):
    test, val = weld_results["test"], weld_results["val"]
    state = {"threshold": 0.5}
    assert operating_point(test, val, state)["threshold_from"] == "fit"
    assert operating_point(test, val, state, "component_audio")["threshold_from"] == "val"
    lacking = operating_point(test, val.drop(columns="component_audio"), {}, "component_audio")
    assert lacking["threshold_from"] is None and math.isnan(lacking["f1"])


def test_summary_holds_component_rows_beside_the_fused_method(weld_results, tmp_path):
    paths = weld_results["paths"]
    micro = tmp_path / "micro.json"
    compute_micro(
        [weld_results["out"]], [paths["test.parquet"]], [weld_results["maps"]],
        paths["manifest.parquet"], weld_results["cfg"], micro,
    )  # fmt: skip
    summary = summarise_results(
        [weld_results["out"]], [micro], tmp_path / "metrics.csv", tmp_path / "metrics.md"
    )
    methods = ["late_fusion", "late_fusion[audio]", "late_fusion[video]"]
    assert sorted(summary["method"].unique()) == methods
    csv = pd.read_csv(tmp_path / "metrics.csv").set_index(["method", "average"])
    result = json.loads(weld_results["out"].read_text())
    test = weld_results["test"]
    for method, metrics in zip(methods, [result["metrics"], *result["components"].values()]):
        for average in ("per_category", "macro"):
            row = csv.loc[(method, average)]
            assert row["auroc_porosity"] == pytest.approx(metrics["auroc_porosity"], abs=1e-6)
            assert row["image_auroc"] == pytest.approx(metrics["image_auroc"], abs=1e-6)
            assert math.isnan(row["pixel_auroc"]) and math.isnan(row["aupro"])
        micro = csv.loc[(method, "micro")]  # one category: pooled = per category
        assert micro["image_auroc"] == pytest.approx(metrics["image_auroc"], abs=1e-6)
    audio = csv.loc[("late_fusion[audio]", "per_category")]
    assert audio["component"] == "audio" and audio["base"] == "late_fusion[audio]"
    assert audio["fusion"] == "zscore" and audio["n_images"] == len(test)
    assert csv.loc[("late_fusion[audio]", "micro")]["image_auroc"] == pytest.approx(
        roc_auc_score(test["label"], test["component_audio"]), abs=1e-6
    )
    md = (tmp_path / "metrics.md").read_text()
    assert "late_fusion[video]" in md and "## Per defect type" in md and "porosity" in md
