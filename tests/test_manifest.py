"""Manifest building from the MVTec AD layout, and its errors."""

import logging

import numpy as np
import pandas as pd
import pytest
from conftest import write_png

from iadbench.data.manifest import COLUMNS, build_manifest
from iadbench.errors import ConfigError, DataError
from iadbench.pipeline import make_manifest


def cfg(root, categories=("widget",)):
    return {"layout": "mvtec", "root": str(root), "categories": list(categories)}


def test_manifest_columns_labels_and_masks(tiny_mvtec):
    frame = build_manifest("tiny", cfg(tiny_mvtec))
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 7
    assert (frame["split"] == "train").sum() == 3
    dent = frame[frame["defect_type"] == "dent"]
    assert dent["label"].tolist() == [1, 1]
    assert all(p.endswith("_mask.png") for p in dent["mask_path"])
    assert frame.loc[frame["defect_type"] == "good", "mask_path"].isna().all()
    assert frame["sample_id"].is_unique
    assert "widget/test/dent/000" in set(frame["sample_id"])


def test_manifest_is_written_atomically_and_readable(tiny_mvtec, tmp_path):
    out = tmp_path / "out" / "manifest.parquet"
    make_manifest("tiny", cfg(tiny_mvtec), out)
    assert pd.read_parquet(out)["label"].sum() == 2
    assert [p.name for p in out.parent.iterdir()] == ["manifest.parquet"]


def test_missing_mask_is_an_error_naming_the_image(tiny_mvtec, tmp_path):
    (tiny_mvtec / "widget" / "ground_truth" / "dent" / "001_mask.png").unlink()
    out = tmp_path / "manifest.parquet"
    with pytest.raises(DataError, match=r"dent/001\.png: anomalous test image has no"):
        make_manifest("tiny", cfg(tiny_mvtec), out)
    assert not out.exists()


def test_mask_size_mismatch_names_the_mask(tiny_mvtec):
    write_png(
        tiny_mvtec / "widget" / "ground_truth" / "dent" / "000_mask.png",
        np.full((16, 16), 255, np.uint8),
    )
    with pytest.raises(DataError, match=r"000_mask\.png: mask size \(16, 16\) differs"):
        build_manifest("tiny", cfg(tiny_mvtec))


def test_empty_mask_on_anomalous_image_is_an_error(tiny_mvtec):
    write_png(
        tiny_mvtec / "widget" / "ground_truth" / "dent" / "000_mask.png",
        np.zeros((32, 32), np.uint8),
    )
    with pytest.raises(DataError, match="has no defect pixels"):
        build_manifest("tiny", cfg(tiny_mvtec))


def test_unknown_category_and_layout(tiny_mvtec):
    with pytest.raises(DataError, match="category 'nope' not found"):
        build_manifest("tiny", cfg(tiny_mvtec, ["nope"]))
    with pytest.raises(ConfigError, match="unknown layout 'weird'"):
        build_manifest("tiny", {**cfg(tiny_mvtec), "layout": "weird"})


def test_no_training_images_is_an_error(tiny_mvtec):
    for f in (tiny_mvtec / "widget" / "train" / "good").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="no normal training images"):
        build_manifest("tiny", cfg(tiny_mvtec))


def test_unsupported_file_in_image_folder(tiny_mvtec):
    (tiny_mvtec / "widget" / "train" / "good" / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match=r"notes\.txt: unsupported file type"):
        build_manifest("tiny", cfg(tiny_mvtec))


def test_mask_without_image_warns(tiny_mvtec, caplog):
    write_png(
        tiny_mvtec / "widget" / "ground_truth" / "dent" / "009_mask.png",
        np.full((32, 32), 255, np.uint8),
    )
    with caplog.at_level(logging.WARNING):
        frame = build_manifest("tiny", cfg(tiny_mvtec))
    assert len(frame) == 7
    assert "009_mask.png: mask without a matching image" in caplog.text


def test_real_mvtec_bottle_manifest(shared_mvtec):
    frame = build_manifest("mvtec", cfg(shared_mvtec, ["bottle"]))
    counts = frame.groupby(["split", "defect_type"]).size().to_dict()
    assert counts == {
        ("train", "good"): 209,
        ("test", "good"): 20,
        ("test", "broken_large"): 20,
        ("test", "broken_small"): 22,
        ("test", "contamination"): 21,
    }
    assert frame["mask_path"].notna().sum() == 63
