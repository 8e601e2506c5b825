"""Crane (METHODS §12) through Snakemake with a tiny random CLIP: one cached refined-path view for
the deterministic, Bayes, fused and sigma-0 cells, options in every row, the variance outputs,
reruns limited to what a change touches, and a score that never reads labels or masks."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_workflow import TINY, planned_rules, snakemake, write_config

from iadbench.config import prepare_config
from iadbench.methods.crane.method import Crane
from iadbench.methods.kinds import params_of
from iadbench.pipeline.models import method_inputs

REPO = Path(__file__).resolve().parents[1]
CONFIG = copy.deepcopy(TINY)
CONFIG["datasets"]["demo"]["categories"] = ["brick"]
CONFIG["backbones"] = {"tiny": {"model": "clip_tiny", "weights": "random"}}
VISUAL = {"backbone": "tiny", "final_attn": "rcs", "rcs": {"layers": [1, 2]}}
DRAW = {"samples": 3, "sigma": 0.01}
CONFIG["methods"] = {
    "det": {"kind": "crane", **VISUAL, "bayes": {"samples": 0}, "fusion_alpha": 0},
    "bay": {"kind": "crane", **VISUAL, "bayes": DRAW, "fusion_alpha": 1},
    "fused": {"kind": "crane", **VISUAL, "bayes": DRAW, "fusion_alpha": 0.5},
    "zero": {"kind": "crane", **VISUAL, "bayes": {"samples": 3, "sigma": 0}},
}
ENCODER_RULES = {"clip_visual", "text_embeddings", "text_bayes"}
SCORES = "results/demo/scores/{}/brick/test/{}"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("crane")
    write_config(workdir, CONFIG)
    snakemake(workdir)
    return workdir


def scores(workdir: Path, method: str) -> pd.DataFrame:
    return pd.read_parquet(workdir / SCORES.format(method, "scores.parquet"))


def maps(workdir: Path, method: str) -> np.ndarray:
    return np.load(workdir / SCORES.format(method, "maps.npy"))


@pytest.mark.e2e
def test_every_cell_reads_one_view_and_its_options_are_in_the_rows(finished):
    summary = pd.read_csv(finished / "results/summary/metrics.csv")
    rows = summary[summary["average"] == "per_category"].set_index("method")
    assert set(rows.index) == {"det", "bay", "fused", "zero"}
    # eattn_from null: Crane's depth * 5 // 24, block 0 of the tiny CLIP's 4
    assert set(rows["taps"].astype(str)) == {"0,1,2,3"} and set(rows["eattn_from"]) == {0}
    assert set(rows["final_attn"]) == {"rcs"} and set(rows["rcs_layers"]) == {"1,2"}
    assert set(rows["prompts"]) == {"april_gan"} and set(rows["class_name"]) == {"brick"}
    assert rows.loc["bay", "bayes_samples"] == 3 and rows.loc["bay", "bayes_sigma"] == 0.01
    assert rows.loc["fused", "fusion_alpha"] == 0.5 and rows.loc["bay", "bayes_seed"] == 0
    assert rows["weights"].str.startswith("random").all()
    assert np.isnan(rows.loc["det", "score_std_mean"])
    assert rows.loc["bay", "score_std_max"] >= rows.loc["bay", "score_std_mean"] > 0
    assert rows.loc["zero", "score_std_max"] == 0 and rows.loc["zero", "map_std_mean"] == 0
    macro = summary[(summary["average"] == "macro") & (summary["method"] == "bay")]
    assert macro["score_std_mean"].iloc[0] == rows.loc["bay", "score_std_mean"]
    views = list((finished / "results/demo/clip/tiny/brick/test").iterdir())
    assert len(views) == 1 and views[0].name.startswith("visual-crane-")
    text = finished / "results/text/tiny/april_gan"
    assert sorted(p.name for p in text.iterdir()) == ["brick", "brick.npz"]
    assert [p.name for p in (text / "brick").iterdir()] == ["bayes-s0.01-r3-seed0.npz"]
    assert "Prompt-sampling variance" in (finished / "results/summary/report.html").read_text()


@pytest.mark.e2e
def test_fusion_mixes_the_two_paths_and_sigma_0_is_the_deterministic_path(finished):
    det, bay, fused, zero = (scores(finished, m) for m in ("det", "bay", "fused", "zero"))
    assert np.array_equal(zero["score"], det["score"])
    assert np.array_equal(maps(finished, "zero"), maps(finished, "det"))
    assert not zero["score_std"].any() and not zero["map_std_mean"].any()
    mixed = 0.5 * det["score"] + 0.5 * bay["score"]
    np.testing.assert_allclose(fused["score"], mixed, rtol=1e-6)
    np.testing.assert_allclose(
        maps(finished, "fused"), 0.5 * maps(finished, "det") + 0.5 * maps(finished, "bay"),
        rtol=1e-5, atol=1e-7,
    )  # fmt: skip
    assert not np.array_equal(bay["score"], det["score"])
    np.testing.assert_array_equal(bay["score_std"], fused["score_std"])  # same draws
    assert "score_std" not in det.columns


@pytest.mark.e2e
def test_variance_outputs_for_the_sampled_cells_only(finished):
    root = finished / "results/demo/variance"
    assert sorted(p.name for p in root.iterdir()) == ["bay", "fused", "zero"]
    table = pd.read_csv(root / "bay/brick.csv")
    bay = scores(finished, "bay")
    assert list(table["sample_id"]) == list(bay["sample_id"])
    np.testing.assert_allclose(table["score_std"], bay["score_std"], rtol=1e-12)
    assert (pd.read_csv(root / "zero/brick.csv")[["score_std", "map_std_mean"]] == 0).all().all()
    assert (root / "fused/brick.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.e2e
def test_scoring_options_rerun_no_encoder_job_and_visual_options_keep_the_text(finished):
    assert planned_rules(finished) == {}
    changed = copy.deepcopy(CONFIG)
    changed["methods"]["bay"]["bayes"] = {"samples": 4, "sigma": 0.02, "seed": 1}
    changed["methods"]["fused"]["fusion_alpha"] = 0.25
    changed["methods"]["det"]["image_score_mode"] = "pooled"
    changed["methods"]["zero"]["prompts"] = "winclip"
    write_config(finished, changed)
    planned = planned_rules(finished)
    assert "clip_visual" not in planned, planned
    assert planned["score"] == 4 and planned["text_bayes"] == 1
    assert planned["text_embeddings"] == 1  # the winclip sentences; april_gan's stay cached
    resized = copy.deepcopy(CONFIG)
    resized["methods"]["det"]["attn_type"] = "vv"
    write_config(finished, resized)
    planned = planned_rules(finished)
    assert planned["clip_visual"] == 1 and planned["score"] == 1
    assert not {"text_embeddings", "text_bayes"} & set(planned)
    write_config(finished, CONFIG)


@pytest.mark.e2e
def test_scores_never_depend_on_test_labels_or_masks(finished, tmp_path):
    """Protocol guard: labels shuffled and dropped, masks pointing nowhere, same outputs."""
    config, _ = prepare_config(
        copy.deepcopy(CONFIG), REPO / "config/schema.yaml", ["test_crane_pipeline"]
    )
    manifest = pd.read_parquet(finished / "results/demo/manifest.parquet")
    blind = manifest.assign(
        label=np.random.default_rng(0).permutation(manifest["label"].to_numpy()),
        mask_path=[str(tmp_path / f"missing_{i}.png") for i in range(len(manifest))],
    ).drop(columns="defect_type")
    blind.to_parquet(tmp_path / "blind.parquet")
    text = finished / "results/text/tiny/april_gan"
    view = next((finished / "results/demo/clip/tiny/brick/test").iterdir())
    files = {
        "manifest": str(tmp_path / "blind.parquet"),
        "visual": str(view),
        "text": str(text / "brick.npz"),
        "noisy_text": str(text / "brick/bayes-s0.01-r3-seed0.npz"),
    }
    method_cfg = config["methods"]["fused"]
    backbone, dataset = config["backbones"]["tiny"], config["datasets"]["demo"]
    options = params_of(method_cfg).visual_view("clip_tiny", config["backbones"])[1]
    inputs = method_inputs(method_cfg, files, backbone, dataset, "brick", "test", options)
    inputs.index = inputs.index.drop(columns="label")
    inputs.rows = None
    got, got_maps, columns = Crane(method_cfg, device="cpu").score(None, inputs, (64, 64))
    table = scores(finished, "fused")
    assert list(inputs.index["sample_id"]) == list(table["sample_id"])
    np.testing.assert_array_equal(got, table["score"])
    np.testing.assert_array_equal(got_maps, maps(finished, "fused"))
    np.testing.assert_array_equal(columns["score_std"], table["score_std"])
