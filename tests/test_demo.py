"""The embedded demo dataset: MVTec AD layout, exact masks, determinism, atomic writes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iadbench.data import demo
from iadbench.data.demo import (
    DEFECT_TYPES,
    DEMO_CATEGORIES,
    generate_demo,
    make_defect_sample,
    make_normal_sample,
)

SMALL = dict(image_size=64, n_train=3, n_test_good=2, n_per_defect=2)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def default_root(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("demo") / "data"
    return root, generate_demo(root)


def test_layout_matches_mvtec(default_root):
    root, summary = default_root
    assert sorted(p.name for p in root.iterdir()) == sorted([*DEMO_CATEGORIES, "README.md"])
    assert len(DEFECT_TYPES) >= 3
    for cat in DEMO_CATEGORIES:
        cat_dir = root / cat
        assert sorted(p.name for p in cat_dir.iterdir()) == ["ground_truth", "test", "train"]
        assert [p.name for p in (cat_dir / "train").iterdir()] == ["good"]
        assert sorted(p.name for p in (cat_dir / "test").iterdir()) == sorted(
            ["good", *DEFECT_TYPES]
        )
        assert sorted(p.name for p in (cat_dir / "ground_truth").iterdir()) == sorted(DEFECT_TYPES)
        expected = {"train/good": 24, "test/good": 8, **{f"test/{d}": 4 for d in DEFECT_TYPES}}
        for folder, count in expected.items():
            names = sorted(p.name for p in (cat_dir / folder).iterdir())
            assert names == [f"{i:03d}.png" for i in range(count)], folder
        for defect in DEFECT_TYPES:
            masks = sorted(p.name for p in (cat_dir / "ground_truth" / defect).iterdir())
            assert masks == [f"{i:03d}_mask.png" for i in range(4)]
        assert not (cat_dir / "ground_truth" / "good").exists()
        assert summary["categories"][cat] == {
            "train": {"good": 24},
            "test": {"good": 8, **{d: 4 for d in DEFECT_TYPES}},
        }
    readme = (root / "README.md").read_text()
    assert "CC0" in readme and "seed: 0" in readme and "image_size: 128" in readme


def test_images_and_masks_formats(default_root):
    root, _ = default_root
    for cat in DEMO_CATEGORIES:
        for img_path in sorted((root / cat).glob("t*/*/*.png")):
            with Image.open(img_path) as img:
                assert img.mode == "RGB" and img.size == (128, 128), img_path
        for defect in DEFECT_TYPES:
            for i in range(4):
                with Image.open(root / cat / "ground_truth" / defect / f"{i:03d}_mask.png") as m:
                    assert m.mode == "L" and m.size == (128, 128)
                    arr = np.asarray(m)
                assert set(np.unique(arr)) <= {0, 255}
                frac = (arr == 255).mean()
                assert frac > 0.001, (cat, defect, i, frac)
                assert frac < 0.15, (cat, defect, i, frac)


def test_readable_by_mvtec_reader(default_root):
    from iadbench.data.layouts import LAYOUTS

    root, _ = default_root
    rows = list(LAYOUTS["mvtec"].read({"root": str(root)}, list(DEMO_CATEGORIES)))
    assert len(rows) == 3 * (24 + 8 + 4 * len(DEFECT_TYPES))
    assert all((r["mask_path"] is None) == (r["label"] == 0) for r in rows)


@pytest.mark.parametrize("category", DEMO_CATEGORIES)
@pytest.mark.parametrize("defect", DEFECT_TYPES)
def test_mask_is_exactly_where_image_changed(category, defect):
    for index in range(3):
        clean, defective, mask = make_defect_sample(category, defect, index, image_size=96, seed=3)
        assert clean.shape == defective.shape == (96, 96, 3) and mask.shape == (96, 96)
        changed = (clean != defective).any(axis=2)
        assert not (changed & ~mask).any(), "pixels outside the mask were modified"
        assert mask.any()
        # The defect is visible: nearly all masked pixels changed, by a clear amount on average.
        assert changed[mask].mean() > 0.9
        diff = np.abs(defective.astype(int) - clean.astype(int)).max(axis=2)
        assert diff[mask].mean() > 20, diff[mask].mean()


def test_written_files_match_the_sample_functions(tmp_path):
    root = tmp_path / "d"
    generate_demo(root, ["grass"], seed=5, **SMALL)
    clean, defective, mask = make_defect_sample("grass", "hole", 1, image_size=64, seed=5)
    assert np.array_equal(np.asarray(Image.open(root / "grass/test/hole/001.png")), defective)
    written = np.asarray(Image.open(root / "grass/ground_truth/hole/001_mask.png"))
    assert np.array_equal(written, mask.astype(np.uint8) * 255)
    good = make_normal_sample("grass", "train", 2, image_size=64, seed=5)
    assert np.array_equal(np.asarray(Image.open(root / "grass/train/good/002.png")), good)


def test_test_images_are_not_copies_of_train(default_root):
    root, _ = default_root
    for cat in DEMO_CATEGORIES:
        train = {p.read_bytes() for p in (root / cat / "train" / "good").iterdir()}
        assert len(train) == 24  # no duplicates within train either
        for p in (root / cat / "test").rglob("*.png"):
            assert p.read_bytes() not in train, p


def test_deterministic_and_seed_dependent(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_demo(a, seed=7, **SMALL)
    generate_demo(b, seed=7, **SMALL)
    generate_demo(c, seed=8, **SMALL)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db
    assert da.keys() == dc.keys()
    images = [k for k in da if k.endswith(".png")]
    assert all(da[k] != dc[k] for k in images if "/train/" in k or "/test/" in k)


def test_category_streams_are_independent(tmp_path):
    generate_demo(tmp_path / "one", ["gravel"], seed=1, **SMALL)
    generate_demo(tmp_path / "all", DEMO_CATEGORIES, seed=1, **SMALL)
    one, everything = _digest(tmp_path / "one"), _digest(tmp_path / "all")
    gravel = {k: v for k, v in one.items() if k.startswith("gravel/")}
    assert gravel and all(everything[k] == v for k, v in gravel.items())


def test_failure_leaves_no_partial_root(tmp_path, monkeypatch):
    root = tmp_path / "demo"
    calls = {"n": 0}
    real_save = demo._save_png

    def flaky_save(path, array):
        calls["n"] += 1
        if calls["n"] == 10:
            raise OSError("disk full")
        real_save(path, array)

    monkeypatch.setattr(demo, "_save_png", flaky_save)
    with pytest.raises(OSError, match="disk full"):
        generate_demo(root, **SMALL)
    assert not root.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary directory left behind

    # An existing (older) dataset survives a failed regeneration untouched.
    monkeypatch.setattr(demo, "_save_png", real_save)
    generate_demo(root, ["brick"], seed=2, **SMALL)
    before = _digest(root)
    calls["n"] = 0
    monkeypatch.setattr(demo, "_save_png", flaky_save)
    with pytest.raises(OSError):
        generate_demo(root, seed=9, **SMALL)
    assert _digest(root) == before
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]


def test_existing_root_is_replaced(tmp_path):
    root = tmp_path / "demo"
    (root / "stale").mkdir(parents=True)
    (root / "stale" / "x.txt").write_text("old")
    generate_demo(root, ["brick"], **SMALL)
    assert sorted(p.name for p in root.iterdir()) == ["README.md", "brick"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"categories": ["leather"]},
        {"categories": ["brick", "brick"]},
        {"categories": []},
        {"image_size": 8},
        {"n_train": 0},
        {"seed": -1},
    ],
)
def test_invalid_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_demo(tmp_path / "x", **{**SMALL, **kwargs})
    assert not (tmp_path / "x").exists()
