"""FE-CLIP and APRIL-GAN through Snakemake with a tiny random CLIP: trained once on dataset A's
test split (FE-CLIP from its cached frozen stream, APRIL-GAN from the images with VAND's mosaic
and bicubic resize, its defaults), scored on dataset B, per-epoch loss components
logged, B never read by training, the same seed giving the same checkpoint, and the
cross-dataset table in the summary files."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_workflow import snakemake, write_config

import iadbench.data.images as images_module
from iadbench.config import prepare_config
from iadbench.methods.clip_trained import trainer as clip_trained
from iadbench.pipeline.models import train_method
from iadbench.training import train_model

REPO = Path(__file__).resolve().parents[1]
DEMO = {"seed": 0, "image_size": 64, "n_train": 2, "n_test_good": 2, "n_per_defect": 1}
CONFIG = {
    "datasets": {
        "a": {"layout": "mvtec", "root": "resources/datasets/a", "categories": ["brick"],
              "demo": DEMO, "resize": 64, "crop": 64},
        "b": {"layout": "mvtec", "root": "resources/datasets/b", "categories": ["gravel"],
              "demo": {**DEMO, "seed": 1}, "resize": 64, "crop": 64},
    },
    "backbones": {"tiny": {"model": "clip_tiny", "weights": "random"}},
    "train_sets": {"a_test": {"dataset": "a", "split": "test"}},
    "methods": {
        "fe": {"kind": "fe_clip", "backbone": "tiny", "train_on": "a_test", "datasets": ["b"],
               "taps": [1, 3], "epochs": 1, "batch_size": 4},
        "ag": {"kind": "april_gan", "backbone": "tiny", "train_on": "a_test", "datasets": ["b"],
               "taps": "last2", "epochs": 1},
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fe_clip")
    write_config(workdir, CONFIG)
    snakemake(workdir)
    return workdir


@pytest.mark.e2e
def test_both_kinds_train_on_a_and_score_b_with_their_options_recorded(finished):
    summary = pd.read_csv(finished / "results/summary/metrics.csv")
    macro = summary[summary["average"] == "macro"].set_index("method")
    assert set(macro.index) == {"fe", "ag"} and set(macro["dataset"]) == {"b"}
    assert set(summary[summary["average"] == "micro"]["method"]) == {"fe", "ag"}
    assert macro.loc["fe", "lam"] == 0.1 and macro.loc["fe", "lfs_stat"] == "signed"
    assert macro.loc["fe", "taps"] == "1,3" and macro.loc["ag", "taps"] == "2,3"
    assert macro.loc["ag", "mosaic"] == 0.2 and macro.loc["ag", "image_resize"] == "bicubic"
    assert macro.loc["ag", "mask_resize"] == "bilinear"
    assert set(macro["train_categories"]) == {"brick"} and set(macro["train_on"]) == {"a_test"}
    assert macro["pixel_auroc"].notna().all()
    fe_log = pd.read_csv(finished / "results/models/fe/a_test/loss_log.csv")
    assert {"train_loss", "loss_focal", "loss_dice", "loss_cls"} <= set(fe_log.columns)
    total = fe_log["loss_focal"] + fe_log["loss_dice"] + fe_log["loss_cls"]
    assert total.iloc[0] == pytest.approx(fe_log["train_loss"].iloc[0])
    ag_log = pd.read_csv(finished / "results/models/ag/a_test/loss_log.csv")
    assert "loss_cls" not in ag_log.columns  # APRIL-GAN's image score is zero-shot
    # FE-CLIP trains from the cache; APRIL-GAN's defaults (mosaic 0.2, bicubic) change the images
    assert macro.loc["fe", "frozen_cache"] and not macro.loc["ag", "frozen_cache"]
    cross = pd.read_csv(finished / "results/summary/cross_dataset.csv")
    assert sorted(zip(cross["method"], cross["average"])) == [
        ("ag", "macro"), ("ag", "micro"), ("fe", "macro"), ("fe", "micro")
    ]  # fmt: skip
    assert set(cross["train_on"]) == {"a_test"} and set(cross["dataset"]) == {"b"}
    assert (cross["seeds"] == 1).all() and cross["image_auroc_mean"].between(0, 1).all()
    table = (finished / "results/summary/cross_dataset.md").read_text()
    assert "| fe | a_test | b |" in table and "I-AUROC macro" in table
    report = (finished / "results/summary/report.html").read_text()
    assert "Cross-dataset results" in report and "I-AUROC micro" in report
    assert (finished / "results/summary/report_figures/training-loss.png").is_file()


def train_fe(workdir: Path, out: Path, monkeypatch, epochs: int = 1) -> list[str]:
    """Train ``fe`` directly on a_test into ``out``; return every image/mask path opened."""
    raw = copy.deepcopy(CONFIG)
    raw["methods"]["fe"]["epochs"] = epochs
    config = prepare_config(raw, REPO / "config/schema.yaml", ["t.yaml"])[0]
    opened: list[str] = []
    real_open = images_module._open

    def recording(path):
        opened.append(str(path))
        return real_open(path)

    monkeypatch.setattr(images_module, "_open", recording)
    monkeypatch.chdir(workdir)
    geometry = {k: config["datasets"]["a"][k] for k in ("resize", "crop", "mask_threshold")}
    frozen = "results/a/clip/tiny/brick/test/frozen-raw-b0"  # the stream entering block 1
    train_method(
        "fe",
        config["methods"]["fe"],
        config["backbones"]["tiny"],
        "a_test",
        {**config["train_sets"]["a_test"], "categories": ["brick"], "geometry": geometry},
        {"manifest": "results/a/manifest.parquet",
         "text": ["results/text/tiny/april_gan/brick.npz"],
         "frozen": [f"{frozen}.npz"], "frozen_tokens": [f"{frozen}.npy"]},
        out,
        out.parent / "resume",
        device="cpu",
    )  # fmt: skip
    return opened


@pytest.mark.e2e
def test_training_reads_only_a_and_the_same_seed_gives_the_same_checkpoint(
    finished, tmp_path, monkeypatch
):
    opened = train_fe(finished, tmp_path / "one", monkeypatch)
    a_test = pd.read_parquet(finished / "results/a/manifest.parquet").query("split == 'test'")
    assert set(opened) == set(a_test["mask_path"].dropna())  # images: their cached stream
    assert not any("datasets/b" in p for p in opened)
    train_fe(finished, tmp_path / "two", monkeypatch)
    one = torch.load(tmp_path / "one/last.pt")
    two = torch.load(tmp_path / "two/last.pt")
    snake = torch.load(finished / "results/models/fe/a_test/last.pt")
    assert one.keys() == two.keys() == snake.keys()
    assert all(torch.equal(one[k], two[k]) and torch.equal(one[k], snake[k]) for k in one)


@pytest.mark.e2e
def test_a_killed_training_resumes_to_the_uninterrupted_weights(finished, tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    train_fe(finished, whole / "out", monkeypatch, epochs=2)

    manifest = pd.read_parquet(finished / "results/a/manifest.parquet")
    per_epoch = -(
        -int((manifest["split"] == "test").sum()) // CONFIG["methods"]["fe"]["batch_size"]
    )

    def stop(step: int) -> None:
        if step == per_epoch + 1:  # in the second epoch, after the first epoch's checkpoint
            raise RuntimeError("killed")

    killed = tmp_path / "killed"
    with monkeypatch.context() as patch:
        patch.setattr(clip_trained, "train_model", functools.partial(train_model, on_step=stop))
        with pytest.raises(RuntimeError, match="killed"):
            train_fe(finished, killed / "out", monkeypatch, epochs=2)
    assert any((killed / "resume").rglob("checkpoint.pt"))
    train_fe(finished, killed / "out", monkeypatch, epochs=2)
    summary = json.loads((killed / "out/summary.json").read_text())
    assert summary["resumed_from_epoch"] == 1
    one, two = torch.load(whole / "out/last.pt"), torch.load(killed / "out/last.pt")
    assert all(torch.equal(one[k], two[k]) for k in one)
