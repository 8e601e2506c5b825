"""The weld family through Snakemake on a miniature generated weld dataset: embeddings cached
per (encoder, split), four kinds fitted on TRAIN and selected on VAL, TEST results with
per-defect AUROCs, single-modality rows, the label box recorded and no pixel metric."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_workflow import snakemake_cmd, write_config

from iadbench.data.weld_demo import LABEL_BOX

CONFIG = {
    "datasets": {
        "weld": {
            "layout": "weld",
            "root": "resources/datasets/weld",
            "categories": ["weld"],
            "demo": {"seed": 0, "n_train": 4, "n_test_good": 2, "n_per_defect": 1},
            "label_mask": {"box": list(LABEL_BOX)},
        }
    },
    "backbones": {"r18": {"model": "resnet18", "weights": "random", "layers": [2, 3]},
                  "dino": {"model": "dino_tiny", "weights": "random", "token_norm": True}},
    "encoders": {
        "frames": {"modality": "video", "backbone": "r18", "frames": {"stride": 5},
                   "size": [32, 48]},
        "logmel": {"modality": "audio", "n_mels": 16},
        "sensors": {"modality": "sensor", "length": 16},
        "photos": {"modality": "photo", "backbone": "r18", "size": [32, 64]},
        "dino": {"modality": "photo", "backbone": "dino", "size": [32, 64]},
    },
    "methods": {
        "film": {"kind": "causal_film", "d_model": 16, "heads": 2, "sensor_dim": 8, "epochs": 2,
                 "warmup_epochs": 0, "ema": None, "batch_size": 4,
                 "encoders": {"video": "frames", "audio": "logmel", "sensor": "sensors",
                              "photo": "photos"}},
        "late": {"kind": "late_fusion", "audio_widths": [8, 8], "audio_bottleneck": 4,
                 "audio_epochs": 2, "video_widths": [16, 8], "video_epochs": 2,
                 "encoders": {"audio": "logmel", "video": "frames"}},
        "views": {"kind": "view_patchcore", "coreset": 0.5, "encoders": {"photo": "photos"}},
        "m3dm": {"kind": "m3dm", "size": 16, "num_group": 16, "group_size": 8, "trans_dim": 16,
                 "depth": 2, "heads": 2, "taps": [0, 1], "patch_grid": 8, "coreset": 0.5,
                 "encoders": {"photo": "dino"}},
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("weld")
    write_config(workdir, CONFIG)
    cmd = snakemake_cmd(workdir)
    cmd[3:3] = ["results/summary/metrics.csv", "--cores", "2"]  # a target before the options
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workdir


@pytest.mark.e2e
def test_every_encoder_is_cached_once_per_split(finished):
    for encoder, modality in [
        ("frames", "video"),
        ("logmel", "audio"),
        ("sensors", "sensor"),
        ("photos", "photo"),
    ]:
        for split in ("train", "val", "test"):
            base = finished / f"results/weld/embeddings/{encoder}/{modality}/weld/{split}"
            assert base.with_suffix(".npy").exists() and base.with_suffix(".parquet").exists()
    photos = pd.read_parquet(finished / "results/weld/embeddings/photos/photo/weld/test.parquet")
    assert photos.groupby("sample_id")["view"].count().eq(5).all()


@pytest.mark.e2e
def test_test_results_have_image_metrics_per_defect_columns_and_modality_rows(finished):
    summary = pd.read_csv(finished / "results/summary/metrics.csv")
    rows = summary[summary["average"] == "per_category"].set_index("method")
    assert set(rows.index) == {"film", "late", "late[audio]", "late[video]", "views", "m3dm",
                               "m3dm[xyz]", "m3dm[rgb]"}  # fmt: skip
    assert rows["image_auroc"].between(0, 1).all()
    assert rows["pixel_auroc"].isna().all() and rows["aupro"].isna().all()
    defects = {"auroc_burnthrough", "auroc_lack_of_fusion", "auroc_porosity", "auroc_spatter"}
    assert defects <= set(summary.columns)
    assert rows[sorted(defects)].notna().all().all()
    assert set(rows["label_mask"]) == {",".join(map(str, LABEL_BOX))}
    assert set(rows["threshold_from"]) == {"val"}


@pytest.mark.e2e
def test_late_fusion_records_the_weight_it_chose_on_val(finished):
    state = json.loads((finished / "results/weld/models/late/weld/state.json").read_text())
    assert 0.0 <= state["w"] <= 1.0
    scores = pd.read_parquet(finished / "results/weld/scores/late/weld/test/scores.parquet")
    fused = state["w"] * scores["component_audio"] + (1 - state["w"]) * scores["component_video"]
    np.testing.assert_allclose(scores["score"], fused, rtol=1e-6, atol=1e-9)


@pytest.mark.e2e
def test_m3dm_fuses_its_banks_with_the_svm_fitted_on_train(finished):
    state = json.loads((finished / "results/weld/models/m3dm/weld/state.json").read_text())
    assert len(state["train_vectors"]) == 4  # the 4 TRAIN runs, never VAL or TEST
    scores = pd.read_parquet(finished / "results/weld/scores/m3dm/weld/test/scores.parquet")
    xyz, rgb = state["svm"]["coef"]
    fused = xyz * scores["component_xyz"] + rgb * scores["component_rgb"]
    np.testing.assert_allclose(scores["score"], fused, rtol=1e-6, atol=1e-12)
