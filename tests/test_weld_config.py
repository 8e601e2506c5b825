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


def anchored(**method) -> dict:
    """The example with a tiny random CLIP under backbones: and causal_film's entry changed."""
    cfg = copy.deepcopy(EXAMPLE)
    cfg["backbones"]["clip_tiny"] = {"model": "clip_tiny", "weights": "random"}
    cfg["methods"]["causal_film"].update(method)
    return cfg


def test_a_text_anchor_with_a_clip_backbone_prepares():
    anchor = {"prompt": "a normal weld", "weight": 0.1}
    cfg = prepared(anchored(text_anchor=anchor, backbone="clip_tiny"))
    assert cfg["methods"]["causal_film"]["text_anchor"] == anchor
    assert prepared(EXAMPLE)["methods"]["causal_film"]["text_anchor"] is None


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ({"text_anchor": {"prompt": "a normal weld", "weight": 0.1}}, "text_anchor needs backbone"),
        (
            {"text_anchor": {"prompt": "a normal weld", "weight": 0.1}, "backbone": "lite0"},
            "backbone 'lite0' is efficientnet_lite0, not a CLIP model",
        ),
        (
            {"text_anchor": {"prompt": "a normal weld", "weight": 0.1}, "backbone": "nope"},
            "backbone 'nope' is not defined under backbones",
        ),
        ({"backbone": "clip_tiny"}, "drop backbone: or set text_anchor"),
        ({"text_anchor": {"prompt": "", "weight": 0.1}, "backbone": "clip_tiny"}, "text_anchor"),
        ({"text_anchor": {"prompt": "a normal weld", "weight": -1}}, "text_anchor"),
        ({"text_anchor": {"prompt": "a normal weld"}, "backbone": "clip_tiny"}, "text_anchor"),
    ],
)
def test_a_text_anchor_needs_a_clip_backbone_and_a_backbone_needs_a_text_anchor(method, message):
    with pytest.raises(ConfigError, match=rf"causal_film.*{message}|{message}.*causal_film"):
        prepared(anchored(**method))
