"""Validation and labelled-training splits (``val_split``) carved out of the test rows."""

from __future__ import annotations

import logging
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import yaml

from iadbench.data.manifest import COLUMNS, SORT_KEY, build_manifest, to_frame
from iadbench.data.splits import apply_val_split
from iadbench.errors import ConfigError

SCHEMA = Path(__file__).resolve().parents[1] / "config" / "schema.yaml"


def rows(category: str, split: str, defect: str, n: int) -> list[dict]:
    """``n`` manifest rows of one (category, split, defect_type)."""
    return [
        {
            "sample_id": f"{category}/{split}/{defect}/{i:03d}",
            "category": category,
            "split": split,
            "label": 0 if defect == "good" else 1,
            "defect_type": defect,
            "image_path": f"/d/{category}/{split}/{defect}/{i:03d}.png",
            "mask_path": None if defect == "good" else f"/d/{category}/gt/{defect}/{i:03d}.png",
            "note": "",
        }
        for i in range(n)
    ]


def frame_of(*groups: tuple[str, str, str, int]) -> pd.DataFrame:
    return to_frame([row for group in groups for row in rows(*group)])


def counts(frame: pd.DataFrame) -> dict:
    """``{(category, defect_type): {split: count}}`` of the rows the layout put in test."""
    tested = frame[frame["source_split"] == "test"]
    table = tested.groupby(["category", "defect_type"])["split"].value_counts()
    out: dict = {}
    for (category, defect, split), count in table.items():
        out.setdefault((category, defect), {})[split] = int(count)
    return out


def drawn(frame: pd.DataFrame, category: str, defect: str) -> dict[str, list[str]]:
    """Sorted sample ids per split of one stratum."""
    stratum = frame[(frame["category"] == category) & (frame["defect_type"] == defect)]
    return {s: sorted(g["sample_id"]) for s, g in stratum.groupby("split")}


# n = 1, 2, 3, 10 as four defect strata of one category; expected (val, train_labelled, test)
@pytest.mark.parametrize(
    ("fraction", "labelled", "expected"),
    [
        (0.2, 0.0, {1: (0, 0, 1), 2: (1, 0, 1), 3: (1, 0, 2), 10: (2, 0, 8)}),
        (0.5, 0.3, {1: (0, 0, 1), 2: (1, 0, 1), 3: (2, 0, 1), 10: (5, 3, 2)}),
        (0.05, 0.05, {1: (0, 0, 1), 2: (1, 0, 1), 3: (1, 1, 1), 10: (1, 1, 8)}),
        (0.9, 0.05, {1: (0, 0, 1), 2: (1, 0, 1), 3: (2, 0, 1), 10: (9, 0, 1)}),
        # half up on the fraction as written: 0.25 * 10 -> 3, 0.35 * 10 -> 4 (round() gives 2, 4)
        (0.25, 0.35, {1: (0, 0, 1), 2: (1, 0, 1), 3: (1, 1, 1), 10: (3, 4, 3)}),
        (0.15, 0.45, {1: (0, 0, 1), 2: (1, 0, 1), 3: (1, 1, 1), 10: (2, 5, 3)}),
    ],
)
def test_counts_per_stratum(fraction, labelled, expected):
    frame = frame_of(("c", "train", "good", 5), *[("c", "test", f"d{n}", n) for n in expected])
    moved = apply_val_split(frame, fraction, seed=3, labelled_fraction=labelled)
    got = counts(moved)
    for n, (n_val, n_lab, n_test) in expected.items():
        split_counts = got[("c", f"d{n}")]
        assert (
            split_counts.get("val", 0),
            split_counts.get("train_labelled", 0),
            split_counts.get("test", 0),
        ) == (n_val, n_lab, n_test), n


def test_single_image_strata_stay_in_test():
    frame = frame_of(
        ("a", "train", "good", 3),
        ("a", "test", "good", 1),
        ("a", "test", "dent", 1),
        ("b", "train", "good", 3),
        ("b", "test", "good", 1),
        ("b", "test", "scratch", 1),
    )
    moved = apply_val_split(frame, 0.9, labelled_fraction=0.09)
    assert (moved["split"] == frame["split"]).all()
    assert set(moved.loc[moved["source_split"] == "test", "split"]) == {"test"}


def test_splits_are_disjoint_and_cover_every_row():
    frame = frame_of(
        ("a", "train", "good", 8),
        ("a", "test", "good", 10),
        ("a", "test", "dent", 7),
        ("b", "train", "good", 4),
        ("b", "test", "crack", 6),
    )
    moved = apply_val_split(frame, 0.3, seed=1, labelled_fraction=0.3)
    assert len(moved) == len(frame) and moved["sample_id"].is_unique
    assert set(moved["sample_id"]) == set(frame["sample_id"])
    by_split = {s: set(g["sample_id"]) for s, g in moved.groupby("split")}
    assert set(by_split) == {"train", "train_labelled", "val", "test"}
    names = list(by_split)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            assert not by_split[first] & by_split[second], (first, second)
    # every stratum keeps test images and gives some to val
    for stratum in counts(moved).values():
        assert stratum.get("test", 0) >= 1 and stratum.get("val", 0) >= 1


def test_train_rows_never_move():
    # the train "good" rows are not part of the test "good" stratum: 2 test images -> 1 val
    frame = frame_of(("a", "train", "good", 20), ("a", "test", "good", 2))
    moved = apply_val_split(frame, 0.5, labelled_fraction=0.4)
    train = moved[frame["split"] == "train"]
    assert (train["split"] == "train").all() and (train["source_split"] == "train").all()
    assert counts(moved)[("a", "good")] == {"val": 1, "test": 1}


def test_source_split_is_recorded_and_added_when_absent():
    frame = frame_of(("a", "train", "good", 3), ("a", "test", "dent", 4))
    plain = frame.drop(columns="source_split")
    moved = apply_val_split(plain, 0.5, labelled_fraction=0.25)
    assert (moved["source_split"] == plain["split"]).all()
    assert set(moved.loc[moved["split"] != plain["split"], "source_split"]) == {"test"}
    assert set(moved.loc[moved["split"] != plain["split"], "split"]) == {"val", "train_labelled"}
    assert "source_split" not in plain and plain.equals(frame.drop(columns="source_split"))


def test_same_seed_same_draw_other_seed_other_draw():
    frame = frame_of(("a", "train", "good", 3), ("a", "test", "dent", 40))
    first = apply_val_split(frame, 0.5, seed=7)
    assert first.equals(apply_val_split(frame, 0.5, seed=7))
    # the draw follows the sorted sample ids, not the input order
    shuffled = frame.sample(frac=1, random_state=0)
    again = apply_val_split(shuffled, 0.5, seed=7)
    assert drawn(again, "a", "dent") == drawn(first, "a", "dent")
    other = apply_val_split(frame, 0.5, seed=8)
    assert drawn(other, "a", "dent")["val"] != drawn(first, "a", "dent")["val"]
    assert len(drawn(other, "a", "dent")["val"]) == len(drawn(first, "a", "dent")["val"]) == 20


def test_other_categories_and_defect_types_do_not_change_a_draw():
    base = frame_of(("a", "train", "good", 3), ("a", "test", "good", 12), ("a", "test", "dent", 9))
    grown = pd.concat(
        [
            frame_of(("0first", "train", "good", 3), ("0first", "test", "good", 15)),
            base,
            frame_of(("a", "test", "crack", 11), ("z", "test", "dent", 9)),
        ],
        ignore_index=True,
    )
    before = apply_val_split(base, 0.3, seed=2, labelled_fraction=0.2)
    after = apply_val_split(grown, 0.3, seed=2, labelled_fraction=0.2)
    for defect in ("good", "dent"):
        assert drawn(after, "a", defect) == drawn(before, "a", defect), defect
    # a category with the same defect names gets its own draw
    assert drawn(after, "z", "dent")["val"] != [
        s.replace("a/", "z/", 1) for s in drawn(before, "a", "dent")["val"]
    ]


def test_val_draw_does_not_depend_on_labelled_fraction():
    frame = frame_of(("a", "train", "good", 3), ("a", "test", "dent", 20))
    without = apply_val_split(frame, 0.25, seed=4)
    labelled = apply_val_split(frame, 0.25, seed=4, labelled_fraction=0.25)
    assert drawn(labelled, "a", "dent")["val"] == drawn(without, "a", "dent")["val"]
    assert len(drawn(labelled, "a", "dent")["train_labelled"]) == 5


@pytest.mark.parametrize(
    ("fraction", "labelled", "match"),
    [
        (0.6, 0.4, r"val_split\.fraction \+ val_split\.labelled_fraction must be < 1"),
        (0.7, 0.5, r"val_split\.fraction \+ val_split\.labelled_fraction must be < 1"),
        (0.7, 0.3, r"val_split\.fraction \+ val_split\.labelled_fraction must be < 1"),
        (0.0, 0.0, r"val_split\.fraction must be in \(0, 1\)"),
        (1.0, 0.0, r"val_split\.fraction must be in \(0, 1\)"),
        (0.2, -0.1, r"val_split\.labelled_fraction must be in \[0, 1\)"),
        (True, 0.0, r"val_split\.fraction must be a number"),
    ],
)
def test_bad_fractions_are_config_errors(fraction, labelled, match):
    frame = frame_of(("a", "train", "good", 3), ("a", "test", "dent", 4))
    with pytest.raises(ConfigError, match=match):
        apply_val_split(frame, fraction, labelled_fraction=labelled)


def test_bad_seed_is_a_config_error():
    frame = frame_of(("a", "train", "good", 3), ("a", "test", "dent", 4))
    with pytest.raises(ConfigError, match=r"val_split\.seed must be an integer >= 0"):
        apply_val_split(frame, 0.5, seed=-1)


def test_schema_accepts_val_split_and_rejects_bad_fractions():
    entry = yaml.safe_load(SCHEMA.read_text())["properties"]["datasets"]["additionalProperties"]
    validator = jsonschema.Draft202012Validator(entry)
    ok = {"root": "r", "categories": ["a"], "val_split": {"fraction": 0.2}}
    assert not list(validator.iter_errors(ok))
    props = entry["properties"]["val_split"]["properties"]
    assert props["seed"]["default"] == 0 and props["labelled_fraction"]["default"] == 0
    for bad in (
        {},
        {"fraction": 1},
        {"fraction": 0},
        {"fraction": 0.2, "labelled_fraction": 1},
        {"fraction": 0.2, "seed": -1},
        {"fraction": 0.2, "other": 1},
    ):
        assert list(validator.iter_errors({**ok, "val_split": bad})), bad


# ------------------------------------------------------------------ build_manifest


def cfg(root, **extra) -> dict:
    return {"layout": "mvtec", "root": str(root), "categories": ["widget"], **extra}


def test_build_manifest_moves_rows_and_records_source_split(tiny_mvtec, caplog):
    with caplog.at_level(logging.INFO, logger="iadbench.data.manifest"):
        frame = build_manifest("tiny", cfg(tiny_mvtec, val_split={"fraction": 0.5, "seed": 0}))
    assert list(frame.columns) == COLUMNS
    assert counts(frame) == {
        ("widget", "dent"): {"val": 1, "test": 1},
        ("widget", "good"): {"val": 1, "test": 1},
    }
    assert (frame.loc[frame["split"] == "train", "source_split"] == "train").all()
    assert (frame.loc[frame["split"] == "val", "source_split"] == "test").all()
    assert frame.equals(frame.sort_values(SORT_KEY, kind="stable").reset_index(drop=True))
    val = frame[frame["split"] == "val"]
    assert val.loc[val["label"] == 1, "mask_path"].notna().all()
    assert "category widget: 4 test images -> 2 val, 0 train_labelled, 2 test" in caplog.text


def test_build_manifest_without_val_split_keeps_layout_splits(tiny_mvtec):
    frame = build_manifest("tiny", cfg(tiny_mvtec))
    assert (frame["source_split"] == frame["split"]).all()
    assert set(frame["split"]) == {"train", "test"}


def test_missing_mask_notes_travel_with_moved_rows(tiny_mvtec):
    (tiny_mvtec / "widget" / "ground_truth" / "dent" / "001_mask.png").unlink()
    frame = build_manifest(
        "tiny", cfg(tiny_mvtec, allow_missing_masks=True, val_split={"fraction": 0.5})
    )
    row = frame.set_index("sample_id").loc["widget/test/dent/001"]
    assert row["note"] == "missing_mask" and row["mask_path"] is None
    assert (frame.loc[frame["sample_id"] != "widget/test/dent/001", "note"] == "").all()


def test_build_manifest_names_the_dataset_and_both_keys(tiny_mvtec):
    bad = cfg(tiny_mvtec, val_split={"fraction": 0.5, "labelled_fraction": 0.5})
    with pytest.raises(ConfigError, match=r"dataset 'tiny': val_split\.fraction \+ val_split\."):
        build_manifest("tiny", bad)
