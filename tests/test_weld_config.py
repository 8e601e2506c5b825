"""Start-up checks of multimodal configs: encoders by role, layouts that have the modalities."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from iadbench.config import dataset_splits, prepare_config
from iadbench.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"
EXAMPLE = yaml.safe_load((REPO / "config/examples/welding.yaml").read_text())


def prepared(cfg: dict) -> dict:
    return prepare_config(copy.deepcopy(cfg), SCHEMA, ["test.yaml"])[0]


def test_the_example_prepares_with_encoder_defaults_written_out():
    cfg = prepared(EXAMPLE)
    assert cfg["encoders"]["logmel"]["modality"] == "audio"
    assert cfg["encoders"]["sensors"]["length"] == 64
    assert dataset_splits(cfg["datasets"]["weld_demo"]) == ["test", "val"]
    assert cfg["methods"]["late_fusion"]["w"] == "val"


def test_an_encoder_of_another_modality_is_refused_for_a_role():
    cfg = copy.deepcopy(EXAMPLE)
    cfg["methods"]["late_fusion"]["encoders"] = {"audio": "frames", "video": "frames"}
    with pytest.raises(ConfigError, match="encoders.audio is 'frames', a video encoder"):
        prepared(cfg)


def test_an_unknown_encoder_is_refused_with_the_defined_ones_listed():
    cfg = copy.deepcopy(EXAMPLE)
    cfg["methods"]["view_patchcore"]["encoders"] = {"photo": "nope"}
    with pytest.raises(ConfigError, match="'nope' is not a key of encoders"):
        prepared(cfg)


def test_an_image_kind_on_weld_runs_is_refused():
    cfg = copy.deepcopy(EXAMPLE)
    cfg["methods"]["patchcore"] = {"kind": "patchcore", "backbone": "lite0"}
    with pytest.raises(ConfigError, match="use a kind that reads photo embeddings"):
        prepared(cfg)


def test_a_multimodal_kind_on_an_image_dataset_is_refused():
    cfg = copy.deepcopy(EXAMPLE)
    cfg["datasets"]["images"] = {
        "layout": "mvtec",
        "root": "resources/datasets/demo",
        "categories": ["brick"],
    }
    cfg["methods"]["late_fusion"]["datasets"] = ["images"]
    with pytest.raises(ConfigError, match=r"dataset .images. \(mvtec\) has no \w+ files"):
        prepared(cfg)
