"""Unions of datasets (``layout: union``) built from other datasets' manifests, no images."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import yaml

from iadbench.data.manifest import COLUMNS, SORT_KEY, build_manifest, to_frame
from iadbench.data.splits import apply_val_split
from iadbench.data.union import union_manifest
from iadbench.errors import ConfigError, DataError

SCHEMA = Path(__file__).resolve().parents[1] / "config" / "schema.yaml"


def rows(dataset: str, category: str, split: str, defect: str, n: int) -> list[dict]:
    """``n`` manifest rows of one (category, split, defect_type) of ``dataset``."""
    return [
        {
            "sample_id": f"{category}/{split}/{defect}/{i:03d}",
            "category": category,
            "source": dataset,
            "split": split,
            "label": 0 if defect == "good" else 1,
            "defect_type": defect,
            "image_path": f"/{dataset}/{category}/{split}/{defect}/{i:03d}.png",
            "mask_path": None if defect == "good" else f"/{dataset}/{category}/gt/{i:03d}.png",
            "note": "",
        }
        for i in range(n)
    ]


def manifest(dataset: str, *categories: str) -> pd.DataFrame:
    """A source manifest: per category 3 train good, 2 test good, 4 test dent."""
    groups = [("train", "good", 3), ("test", "good", 2), ("test", "dent", 4)]
    return to_frame(
        row for c in categories for split, d, n in groups for row in rows(dataset, c, split, d, n)
    )


def anomalous_only(dataset: str = "burns", category: str = "bottle") -> pd.DataFrame:
    """A 100 %-anomalous source: no training rows, only anomalous test rows."""
    return to_frame(rows(dataset, category, "test", "burn", 5))


@pytest.fixture
def sources() -> dict[str, pd.DataFrame]:
    return {
        "line_a": manifest("line_a", "bottle", "cable"),
        "line_b": manifest("line_b", "bottle", "screw"),
    }


def union(sources, names=("line_a", "line_b"), **extra) -> pd.DataFrame:
    return union_manifest("mixed", {"layout": "union", "sources": list(names), **extra}, sources)


def test_rows_and_source_column(sources):
    frame = union(sources)
    assert list(frame.columns) == COLUMNS
    assert len(frame) == len(sources["line_a"]) + len(sources["line_b"])
    assert frame["source"].value_counts().to_dict() == {"line_a": 18, "line_b": 18}
    assert frame.attrs["sources"] == ["line_a", "line_b"]
    assert frame.equals(frame.sort_values(SORT_KEY, kind="stable").reset_index(drop=True))
    # paths, labels, masks and notes are the source rows' own
    a = frame[frame["source"] == "line_a"].set_index("image_path").sort_index()
    src = sources["line_a"].set_index("image_path").sort_index()
    for column in ("label", "defect_type", "split", "mask_path", "note"):
        assert a[column].tolist() == src[column].tolist(), column


def test_colliding_categories_are_prefixed_in_every_source(sources):
    frame = union(sources)
    assert sorted(frame["category"].unique()) == [
        "cable",
        "line_a__bottle",
        "line_b__bottle",
        "screw",
    ]
    by_category = frame.groupby("category")["source"].unique().map(list).to_dict()
    assert by_category == {
        "cable": ["line_a"],
        "line_a__bottle": ["line_a"],
        "line_b__bottle": ["line_b"],
        "screw": ["line_b"],
    }


def test_a_prefixed_name_equal_to_a_kept_name_is_an_error():
    sources = {
        "line_a": manifest("line_a", "bottle", "line_b__bottle"),
        "line_b": manifest("line_b", "bottle"),
    }
    with pytest.raises(ConfigError, match=r"'mixed'.*would both be named 'line_b__bottle'"):
        union(sources)


def test_sample_ids_are_unique_and_prefixed(sources):
    frame = union(sources)
    assert frame["sample_id"].is_unique
    for name, source in sources.items():
        ids = frame.loc[frame["source"] == name, "sample_id"]
        assert ids.str.startswith(f"{name}/").all()
        assert sorted(ids.str.removeprefix(f"{name}/")) == sorted(source["sample_id"])


def test_source_split_is_kept(sources):
    sources["line_a"] = apply_val_split(sources["line_a"], 0.5, seed=1)
    sources["line_b"] = sources["line_b"].drop(columns="source_split")
    frame = union(sources)
    a = frame[frame["source"] == "line_a"]
    assert (a.loc[a["split"] == "val", "source_split"] == "test").all()
    assert (a["split"] == "val").sum() == 6  # 1 good + 2 dent per category
    b = frame[frame["source"] == "line_b"]
    assert b["source_split"].tolist() == b["split"].tolist()


def test_a_fully_anomalous_source_is_accepted(sources):
    sources["burns"] = anomalous_only()
    frame = union(sources, names=("line_a", "burns"))
    burns = frame[frame["category"] == "burns__bottle"]
    assert len(burns) == 5 and (burns["label"] == 1).all()
    assert not (burns["split"] == "train").any()
    assert "line_a__bottle" in set(frame["category"])


def test_a_category_without_test_images_is_still_an_error(sources):
    sources["line_b"] = sources["line_b"][sources["line_b"]["split"] == "train"]
    with pytest.raises(DataError, match=r"'mixed'.*category 'line_b__bottle' has no test images"):
        union(sources)


def test_val_split_moves_only_test_rows_and_is_deterministic(sources):
    sources["line_a"] = apply_val_split(sources["line_a"], 0.25, seed=3)
    before = union(sources).set_index("sample_id")
    spec = {"fraction": 0.5, "seed": 7, "labelled_fraction": 0.25}
    after = union(sources, val_split=spec).set_index("sample_id").loc[before.index]
    moved = before["split"] != after["split"]
    assert moved.any()
    assert (before.loc[moved, "split"] == "test").all()
    assert set(after.loc[moved, "split"]) == {"val", "train_labelled"}
    # rows a source already moved keep their split and source_split
    assert (after.loc[before["split"] == "val", "split"] == "val").all()
    assert (after["source_split"] == before["source_split"]).all()
    assert union(sources, val_split=spec).equals(union(sources, val_split=spec))
    other = union(sources, val_split={**spec, "seed": 8}).set_index("sample_id")
    assert not other.loc[before.index, "split"].equals(after["split"])


def test_categories_restrict_the_union(sources):
    frame = union(sources, categories=["cable", "line_b__bottle"])
    assert sorted(frame["category"].unique()) == ["cable", "line_b__bottle"]
    assert len(union(sources, categories="all")) == 36
    with pytest.raises(ConfigError, match=r"'bottle' is in none of the sources"):
        union(sources, categories=["bottle"])


def test_unknown_source_is_a_config_error_naming_it(sources):
    with pytest.raises(ConfigError, match=r"dataset 'mixed': unknown source dataset 'line_c'"):
        union(sources, names=("line_a", "line_c"))


def test_to_frame_leaves_source_empty_and_build_manifest_sets_it(tiny_mvtec):
    plain = to_frame(
        {k: v for k, v in r.items() if k != "source"} for r in rows("x", "a", "test", "good", 2)
    )
    assert plain["source"].tolist() == ["", ""]
    cfg = {"layout": "mvtec", "root": str(tiny_mvtec), "categories": ["widget"]}
    assert set(build_manifest("tiny", cfg)["source"]) == {"tiny"}
    with pytest.raises(ConfigError, match=r"'union' is built from its sources"):
        build_manifest("mixed", {"layout": "union", "sources": ["tiny"]})


def test_schema_needs_sources_not_root_for_a_union():
    entry = yaml.safe_load(SCHEMA.read_text())["properties"]["datasets"]["additionalProperties"]
    validator = jsonschema.Draft202012Validator(entry)
    assert not list(validator.iter_errors({"layout": "union", "sources": ["a", "b"]}))
    assert list(validator.iter_errors({"layout": "union"}))
    assert list(validator.iter_errors({"layout": "union", "sources": []}))
    assert list(validator.iter_errors({"categories": ["a"]}))  # other layouts need a root
    assert not list(validator.iter_errors({"root": "r", "categories": ["a"]}))
