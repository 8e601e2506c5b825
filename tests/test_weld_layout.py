"""The weld layout on a generated miniature of the Intel release's tree (METHODS §13)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest

from iadbench.config import check_references
from iadbench.data.manifest import build_manifest
from iadbench.data.weld import defect_name
from iadbench.data.weld_demo import LABEL_BOX, generate_weld_demo
from iadbench.errors import ConfigError, DataError
from iadbench.pipeline.data import make_manifest


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("weld") / "intel"
    generate_weld_demo(root, seed=1, n_train=2, n_test_good=1, n_per_defect=1)
    return root


@pytest.fixture
def tree(pristine, tmp_path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "intel"))


def _cfg(root: Path, **extra) -> dict:
    return {"layout": "weld", "root": str(root), "categories": ["weld"], **extra}


def _manifest_csv(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)


def _first(table: pd.DataFrame, split: str, code: str) -> int:
    return table.index[(table["SPLIT"] == split) & table["SUBDIRS"].str.endswith(code)][0]


def _run(root: Path, split: str, code: str) -> Path:
    """The folder of the first ``split`` run with class ``code``, e.g. ``-03``."""
    table = _manifest_csv(root)
    return root / table.loc[_first(table, split, code), "SUBDIRS"]


def _edit(root: Path, split: str, code: str, column: str, value: str) -> None:
    """Set ``column`` of the first ``split`` run with class ``code`` in manifest.csv."""
    table = _manifest_csv(root)
    table.loc[_first(table, split, code), column] = value
    table.to_csv(root / "manifest.csv", index=False)


def test_reads_every_run_with_its_files_and_metadata(tree, tmp_path):
    frame = make_manifest("weld", _cfg(tree, label_mask={"box": list(LABEL_BOX)}), tmp_path / "m")
    assert len(frame) == 2 + 2 * (1 + 4)
    assert set(frame["category"]) == {"weld"}
    assert frame.groupby("split").size().to_dict() == {"test": 5, "train": 2, "val": 5}
    row = frame[frame["defect_type"] == "porosity"].iloc[0]
    assert row["sample_id"] == f"weld/{row['split']}/porosity/{row['run_id']}"
    assert row["run_id"].endswith("-03") and row["label"] == 1 and row["note"] == ""
    assert row["video_path"].endswith(f"{row['run_id']}.avi")
    assert len(row["photo_paths"]) == 5 and row["image_path"] == row["photo_paths"][0]
    assert row["weld_type"] == "FILLET" and row["thickness_mm"] == 7.0
    back = pd.read_parquet(tmp_path / "m")  # list column and attrs survive Parquet
    assert list(back.loc[0, "photo_paths"]) == list(frame.loc[0, "photo_paths"])
    assert back.attrs["label_mask"] == list(LABEL_BOX)
    assert back.attrs["dropped_runs"] == []


def test_a_run_without_photos_is_dropped_with_a_warning_or_stops(tree, caplog):
    folder = _run(tree, "VAL", "-00")
    shutil.rmtree(folder / "images")
    run_id = folder.name
    with caplog.at_level(logging.WARNING):
        frame = build_manifest("weld", _cfg(tree))
    assert run_id not in set(frame["run_id"])
    assert frame.attrs["dropped_runs"] == [
        {"run_id": run_id, "split": "val", "defect_type": "good", "missing": "photos"}
    ]
    assert run_id in caplog.text and "label leak" in caplog.text  # label_mask null warns
    assert frame.attrs["label_mask"] is None
    with pytest.raises(DataError, match="no post-weld photos"):
        build_manifest("weld", _cfg(tree, missing_modality="error"))


@pytest.mark.parametrize(
    ("split", "code", "value", "message"),
    [
        ("TEST", "-02", "Blowhole", "unknown CATEGORY 'Blowhole'"),
        ("TEST", "-00", "Porosity", "disagrees with the class code 00"),
        ("TRAIN", "-00", "Burnthrough", "disagrees"),
    ],
)
def test_bad_categories_stop_the_build(tree, split, code, value, message):
    _edit(tree, split, code, "CATEGORY", value)
    with pytest.raises(DataError, match=message):
        build_manifest("weld", _cfg(tree))


def test_a_missing_flac_is_an_error_naming_the_file(tree):
    folder = _run(tree, "TEST", "-09")
    flac = folder / f"{folder.name}.flac"
    flac.unlink()
    with pytest.raises(DataError) as info:
        build_manifest("weld", _cfg(tree))
    assert info.value.path == str(flac)


def test_a_sensor_csv_without_the_six_signals_names_the_file(tree):
    folder = _run(tree, "VAL", "-07")
    sensor = folder / f"{folder.name}.csv"
    lines = sensor.read_text().splitlines()  # drop Secondary Weld Voltage and Remarks
    sensor.write_text("\n".join(line.rsplit(",", 2)[0] for line in lines) + "\n")
    with pytest.raises(DataError, match="Secondary Weld Voltage") as info:
        build_manifest("weld", _cfg(tree))
    assert info.value.path == str(sensor)


def test_a_garbled_video_names_the_file(tree):
    folder = _run(tree, "TRAIN", "-00")
    video = folder / f"{folder.name}.avi"
    video.write_bytes(b"RIFF" + b"\0" * 64)
    with pytest.raises(DataError) as info:
        build_manifest("weld", _cfg(tree))
    assert info.value.path == str(video)


def test_a_defective_training_run_is_refused(tree):
    _edit(tree, "TEST", "-03", "SPLIT", "TRAIN")
    with pytest.raises(DataError, match="TRAIN may only hold Good"):
        build_manifest("weld", _cfg(tree))


def test_val_split_and_other_categories_are_refused(tree):
    with pytest.raises(ConfigError, match="val_split"):
        build_manifest("weld", _cfg(tree, val_split={"fraction": 0.5}))
    with pytest.raises(ConfigError, match="one category"):
        build_manifest("weld", {**_cfg(tree), "categories": ["bottle"]})
    config = {"datasets": {"w": _cfg(tree, val_split={"fraction": 0.5})}, "backbones": {}}
    with pytest.raises(ConfigError, match="val_split is refused"):
        check_references({**config, "methods": {}})
    mvtec = {"root": "r", "categories": ["a"], "missing_modality": "error"}
    with pytest.raises(ConfigError, match="only apply to layout weld"):
        check_references({"datasets": {"m": mvtec}, "backbones": {}, "methods": {}})


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("Good", "good"),
        ("Porosity w/ Excessive Penetration", "porosity_w_excessive_penetration"),
        ("Porosity_w_Excessive_Penetration", "porosity_w_excessive_penetration"),
        ("Lack of Fusion", "lack_of_fusion"),
        (" Crater_Cracks ", "crater_cracks"),
        ("burn_through", "burnthrough"),
    ],
)
def test_category_spellings(written, name):
    assert defect_name(written) == name
