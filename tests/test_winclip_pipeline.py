"""WinCLIP through Snakemake with a tiny random CLIP: cached encoder outputs shared by every
cell, reruns limited to what a change touches, class names recorded, few-shot fits per seed."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
from test_workflow import TINY, planned_rules, snakemake, write_config

from iadbench.clip.cache import load_arrays, visual_identity
from iadbench.errors import CacheError

CONFIG = copy.deepcopy(TINY)
CONFIG["datasets"]["demo"]["categories"] = ["brick", "gravel"]
CONFIG["datasets"]["demo"]["class_names"] = {"grav*": "gravel surface"}
CONFIG["backbones"] = {"tiny": {"model": "clip_tiny", "weights": "random"}}
CONFIG["methods"] = {
    "wc": {"kind": "winclip", "backbone": "tiny"},
    "wc2": {"kind": "winclip", "backbone": "tiny", "k_shot": 2, "seed": [0, 1]},
}
ENCODER_RULES = {"clip_visual", "clip_windows", "text_embeddings"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("winclip")
    write_config(workdir, CONFIG)
    snakemake(workdir)
    return workdir


@pytest.mark.e2e
def test_zero_and_few_shot_results_with_their_class_names(finished):
    summary = pd.read_csv(finished / "results/summary/metrics.csv")
    rows = summary[summary["average"] == "per_category"]
    assert set(rows["method"]) == {"wc", "wc2+seed=0", "wc2+seed=1"}
    named = dict(zip(rows["category"], rows["class_name"]))
    assert named == {"brick": "brick", "gravel": "gravel surface"}
    assert set(rows.loc[rows["method"] == "wc", "k_shot"]) == {0}
    assert set(rows["backbone_model"]) == {"clip_tiny"}
    assert rows["weights"].str.startswith("random").all()
    assert rows["image_auroc"].between(0, 1).all() and rows["aupro"].between(0, 1).all()
    # One text file per (backbone, prompt set, class name), shared by all three methods.
    texts = sorted(p.name for p in (finished / "results/text/tiny/winclip").iterdir())
    assert texts == ["brick.npz", "gravel+surface.npz"]
    # Zero-shot reads the CLS view; few-shot the last block's ln_post tokens (CLS included).
    views = sorted(p.name for p in (finished / "results/demo/clip/tiny/brick/test").iterdir())
    assert views == ["visual-cls.npz", "visual-ln_post-b3.npz", "windows-2-3.npz"]
    scores = pd.read_parquet(finished / "results/demo/scores/wc/gravel/test/scores.parquet")
    assert set(scores["class_name"]) == {"gravel surface"}
    maps = np.load(finished / "results/demo/scores/wc/gravel/test/maps.npy")
    assert maps.shape == (len(scores), 64, 64) and np.isfinite(maps).all()


@pytest.mark.e2e
def test_few_shot_draws_references_per_seed_from_normal_training_images(finished):
    states = {
        seed: json.loads(
            (finished / f"results/demo/models/wc2+seed={seed}/brick/state.json").read_text()
        )
        for seed in (0, 1)
    }
    manifest = pd.read_parquet(finished / "results/demo/manifest.parquet").set_index("sample_id")
    for state in states.values():
        refs = manifest.loc[state["references"]]
        assert len(refs) == 2 and set(refs["split"]) == {"train"} and set(refs["label"]) == {0}
    assert states[0]["references"] != states[1]["references"]
    # Few-shot scores differ from zero-shot ones: the association map is averaged in.
    zero = pd.read_parquet(finished / "results/demo/scores/wc/brick/test/scores.parquet")
    few = pd.read_parquet(finished / "results/demo/scores/wc2+seed=0/brick/test/scores.parquet")
    assert not np.allclose(zero["score"], few["score"])


@pytest.mark.e2e
def test_method_options_rerun_no_encoder_job_and_visual_options_keep_the_text(finished):
    assert planned_rules(finished) == {}
    changed = copy.deepcopy(CONFIG)
    changed["methods"]["wc"]["temperature"] = 0.05
    changed["methods"]["wc"]["include_image"] = False
    write_config(finished, changed)
    planned = planned_rules(finished)
    assert planned and not ENCODER_RULES & set(planned), planned
    assert planned["score"] == 2  # wc on both categories; the few-shot cells are untouched
    resized = copy.deepcopy(CONFIG)
    resized["backbones"]["tiny"]["input_size"] = 96
    write_config(finished, resized)
    planned = planned_rules(finished)
    assert {"clip_visual", "clip_windows"} <= set(planned) and "text_embeddings" not in planned
    write_config(finished, CONFIG)


@pytest.mark.e2e
def test_a_cached_view_made_with_another_encoder_config_is_refused(finished):
    view = finished / "results/demo/clip/tiny/brick/test/visual-cls.npz"
    geometry = {"resize": 64, "crop": 64}
    backbone = {"model": "clip_tiny", "weights": "random", "seed": 0}
    arrays, meta = load_arrays(view, visual_identity(backbone, geometry, "visual-cls"))
    assert arrays["cls"].shape[0] == len(arrays["sample_id"])
    with pytest.raises(CacheError, match="refusing"):
        load_arrays(view, visual_identity({**backbone, "seed": 1}, geometry, "visual-cls"))
