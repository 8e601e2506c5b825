"""The synthetic weld dataset: Intel layout, reproducible bytes, defect traces, wiring."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from iadbench.config import validate_schema
from iadbench.data.manifest import build_manifest
from iadbench.data.media import read_photo, read_sensor
from iadbench.data.weld_demo import LABEL_BOX, generate_weld_demo
from iadbench.pipeline.data import make_demo

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(n_train=2, n_test_good=1, n_per_defect=1)
HEADER = (
    "CATEGORY,WELD_TYPE,THICKNESS_MM,STEEL_TYPE,SAMPLES,CURRENT_A,VOLTAGE_V,GAS_BAR,"
    "ROBOT_SPEED_CPM,DIRECTORY,SUBDIRS,SPLIT"
)


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "weld"
    generate_weld_demo(root, seed=0, **SMALL)
    return root


def test_same_seed_gives_byte_identical_files_through_the_demo_rule(demo, tmp_path):
    summary = make_demo(tmp_path / "again", {"layout": "weld", "seed": 0, **SMALL}, ["weld"])
    assert summary["label_box"] == list(LABEL_BOX)
    assert _hashes(demo) == _hashes(tmp_path / "again")


def test_tree_matches_the_release_layout(demo):
    lines = (demo / "manifest.csv").read_text().splitlines()
    assert lines[0] == HEADER and len(lines) == 1 + 2 + 2 * (1 + 4)
    folder = demo / lines[1].split(",")[10]
    run_id = folder.name
    assert {p.name for p in folder.iterdir()} == {
        f"{run_id}{s}" for s in (".avi", ".flac", ".csv")
    } | {"images"}
    assert len(list((folder / "images").glob("*.jpg"))) == 5
    header = (folder / f"{run_id}.csv").read_text().splitlines()[0]
    assert header.startswith("Date,Time,Part No,") and " ," in header  # trailing spaces


def test_photos_carry_the_class_code_label_in_the_documented_box(demo):
    frame = build_manifest("w", {"layout": "weld", "root": str(demo), "categories": ["weld"]})
    x0, y0, x1, y1 = LABEL_BOX
    for path in frame["image_path"]:
        photo = read_photo(path, size=(90, 200), label_mask=None)
        paper = photo[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1]
        assert (paper > 200).mean() > 0.5 and (paper < 60).any()  # paper with printed digits


def test_defects_leave_their_sensor_traces(demo):
    frame = build_manifest("w", {"layout": "weld", "root": str(demo), "categories": ["weld"]})
    for row in frame.itertuples():
        sensors = read_sensor(row.sensor_path)
        current = sensors["Primary Weld Current"]
        voltage = sensors["Secondary Weld Voltage"]
        assert (current.max() - current.median() > 30) == (row.defect_type == "burnthrough")
        assert (voltage.median() - voltage.min() > 3) == (row.defect_type == "lack_of_fusion")
        gaps = np.diff(sensors["time_s"])
        assert 0.08 < np.median(gaps) < 0.15  # ~8.6 Hz


def test_schema_defaults_of_a_weld_entry(tmp_path):
    config = {
        "datasets": {
            "weld": {"layout": "weld", "root": "w", "categories": ["weld"], "demo": {"seed": 0}},
            "tex": {"root": "t", "categories": ["brick"], "demo": {"seed": 0}},
        },
        "backbones": {"r18": {"model": "resnet18"}},
        "methods": {"pc": {"kind": "patchcore", "backbone": "r18"}},
    }
    validate_schema(config, REPO / "config" / "schema.yaml", ["test"])
    weld = config["datasets"]["weld"]
    assert weld["missing_modality"] == "drop_run" and weld["label_mask"] is None
    assert "image_size" not in weld["demo"] and weld["demo"]["n_train"] == 24
    assert config["datasets"]["tex"]["demo"]["image_size"] == 128
    assert "missing_modality" not in config["datasets"]["tex"]
