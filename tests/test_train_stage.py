"""The train stage end to end: train_sets/train_on, resume after an interruption, val scores,
a zero-shot kind with no model at all, and needs that follow a kind's parameters.

The trained and image-reading kinds are plugins from tests/plugins (kind: "module:Class").
"""

from __future__ import annotations

import copy
import os
import subprocess

import pandas as pd
import pytest
import torch
from conftest import PLUGINS
from test_workflow import TINY, planned_rules, snakemake_cmd, write_config

TRAINED = "results/models/toy/brick_train"
CONFIG = copy.deepcopy(TINY)
CONFIG["datasets"]["demo"]["val_split"] = {"fraction": 0.3, "seed": 0}
CONFIG["train_sets"] = {"brick_train": {"dataset": "demo", "categories": ["brick"]}}
CONFIG["methods"] = {
    "toy": {
        "kind": "toy_kind:ToyParams",
        "backbone": "lite0",
        "train_on": "brick_train",
        "epochs": 3,
        "batch_size": 64,
    },
    "pixel": {"kind": "pixel_kind:PixelParams"},
}


PLUGIN_ENV = {**os.environ, "PYTHONPATH": str(PLUGINS)}


def run(workdir, *args, env=None, ok=True) -> subprocess.CompletedProcess:
    cmd = snakemake_cmd(workdir, "--cores", "2", "--resources", "gpu=1", *args)
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**PLUGIN_ENV, **(env or {})})
    assert (proc.returncode == 0) == ok, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def weights(workdir) -> dict[str, torch.Tensor]:
    return torch.load(workdir / TRAINED / "last.pt", map_location="cpu")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("train")
    write_config(workdir, CONFIG)
    run(workdir)
    return workdir


@pytest.mark.e2e
def test_trained_method_is_trained_once_and_scored_on_test_and_val(uninterrupted):
    log = pd.read_csv(uninterrupted / TRAINED / "loss_log.csv")
    assert list(log["epoch"]) == [0, 1, 2]
    for category in ("brick", "gravel"):
        for split in ("test", "val"):
            scores = uninterrupted / f"results/demo/scores/toy/{category}/{split}/scores.parquet"
            table = pd.read_parquet(scores)
            assert set(table["split"]) == {split} and table["score"].notna().all()
            assert (uninterrupted / f"results/demo/metrics/toy/{category}/{split}.json").exists()
    manifest = pd.read_parquet(uninterrupted / "results/demo/manifest.parquet")
    val = manifest[manifest["split"] == "val"]
    assert len(val) and set(val["source_split"]) == {"test"}
    summary = pd.read_csv(uninterrupted / "results/summary/metrics.csv")
    toy = summary[summary["method"] == "toy"]
    assert set(toy["train_on"]) == {"brick_train"} and (toy["epochs_trained"] == 3).all()
    assert summary.loc[summary["method"] == "pixel", "train_on"].isna().all()
    assert not (uninterrupted / "results/.resume").exists() or not any(
        (uninterrupted / "results/.resume").rglob("checkpoint.pt")
    )


@pytest.mark.e2e
def test_zero_shot_kind_has_no_model_and_shots_add_a_per_category_fit(uninterrupted):
    assert not (uninterrupted / "results/demo/models/pixel").exists()
    config = copy.deepcopy(CONFIG)
    config["methods"]["pixel"]["shots"] = 2
    write_config(uninterrupted, config)
    try:
        plan = planned_rules(uninterrupted, env=PLUGIN_ENV)
    finally:
        write_config(uninterrupted, CONFIG)
    assert plan.get("fit") == 2 and "train" not in plan and "extract" not in plan


@pytest.mark.e2e
def test_an_interrupted_training_resumes_to_the_same_weights(uninterrupted, tmp_path):
    write_config(tmp_path, CONFIG)
    failed = run(tmp_path, "--keep-going", env={"TOY_STOP_AFTER_STEPS": "9"}, ok=False)
    assert "injected interruption" in failed.stdout + failed.stderr
    assert not (tmp_path / TRAINED).exists()
    assert len(list((tmp_path / "results/.resume/toy/brick_train").rglob("checkpoint.pt"))) == 1
    run(tmp_path)
    resumed, reference = weights(tmp_path), weights(uninterrupted)
    assert resumed.keys() == reference.keys()
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)
    log = (tmp_path / "results/logs/train/toy/brick_train.log").read_text()
    assert "resuming" in log
    assert not list((tmp_path / "results/.resume").rglob("checkpoint.pt"))


@pytest.mark.e2e
def test_a_changed_training_option_retrains_without_touching_features(uninterrupted):
    config = copy.deepcopy(CONFIG)
    config["methods"]["toy"]["lr"] = 0.02
    write_config(uninterrupted, config)
    try:
        plan = planned_rules(uninterrupted, env=PLUGIN_ENV)
    finally:
        write_config(uninterrupted, CONFIG)
    assert plan.get("train") == 1 and "extract" not in plan and "fit" not in plan
    assert plan.get("score") == 4  # brick and gravel, test and val
