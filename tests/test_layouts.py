"""Dataset layouts on miniature trees shaped exactly like the real ones, and the manifest policies.

Each tree mirrors its dataset's folder and file naming (MVTec AD/MPDD, BTAD, VisA's split CSV,
generic folders), with 16-32 px images so the whole file runs in a few seconds.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iadbench.data.images import load_image, mask_threshold
from iadbench.data.layouts import LAYOUTS
from iadbench.data.manifest import build_manifest
from iadbench.errors import ConfigError, DataError

RNG = np.random.default_rng(0)


def img(path: Path, size: tuple[int, int] = (16, 16), gray: bool = False) -> Path:
    """A random image at ``path``; the format follows the suffix."""
    shape = size if gray else (*size, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(RNG.integers(0, 255, shape, np.uint8)).save(path)
    return path


def mask(path: Path, size: tuple[int, int] = (16, 16), value: int = 255) -> Path:
    """A mask with a ``value`` square (0 = empty mask)."""
    arr = np.zeros(size, np.uint8)
    arr[2:6, 2:6] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def mvtec_tree(root: Path, categories=("bottle",), mask_name="{stem}_mask.png") -> Path:
    """Per category: train/good 3, test/good 2, test/crack 2 with masks in ground_truth/crack."""
    for cat in categories:
        for i in range(3):
            img(root / cat / "train" / "good" / f"{i:03d}.png")
        for i in range(2):
            img(root / cat / "test" / "good" / f"{i:03d}.png")
            img(root / cat / "test" / "crack" / f"{i:03d}.png")
            mask(root / cat / "ground_truth" / "crack" / mask_name.format(stem=f"{i:03d}"))
        (root / cat / "license.txt").write_text("files beside the split folders are fine")
    return root


def mvtec_cfg(root: Path, categories: list[str] | str = ("bottle",), **extra) -> dict:
    categories = categories if isinstance(categories, str) else list(categories)
    return {"layout": "mvtec", "root": str(root), "categories": categories, **extra}


def counts(frame) -> dict:
    return frame.groupby(["category", "split", "defect_type"]).size().to_dict()


# ------------------------------------------------------------------ MVTec AD, MPDD


def test_mvtec_reads_categories_and_discovers_them(tmp_path):
    root = mvtec_tree(tmp_path / "mvtec_ad", ("bottle", "zipper"))
    (root / "readme.txt").write_text("the real root has loose files too")
    frame = build_manifest("m", mvtec_cfg(root, categories="all"))
    assert sorted(frame["category"].unique()) == ["bottle", "zipper"]
    assert counts(frame)[("zipper", "test", "crack")] == 2
    crack = frame[frame["defect_type"] == "crack"]
    assert crack["mask_path"].str.endswith("_mask.png").all() and (crack["label"] == 1).all()
    assert frame.loc[frame["label"] == 0, "mask_path"].isna().all()
    assert "bottle/test/crack/001" in set(frame["sample_id"])
    assert (frame["note"] == "").all() and frame.attrs["orphan_masks"] == []


def test_mpdd_is_the_mvtec_tree(tmp_path):
    root = mvtec_tree(tmp_path / "mpdd", ("bracket_black",))
    cfg = mvtec_cfg(root, ("bracket_black",))
    mpdd = build_manifest("p", {**cfg, "layout": "mpdd"})
    assert mpdd.equals(build_manifest("p", cfg))
    assert LAYOUTS["mpdd"] is LAYOUTS["mvtec"]


def test_masks_named_like_their_image_need_mask_suffix_empty(tmp_path, caplog):
    root = mvtec_tree(tmp_path / "own", mask_name="{stem}.png")
    frame = build_manifest("o", mvtec_cfg(root, mask_suffix=""))
    assert frame["mask_path"].dropna().map(lambda p: Path(p).name).tolist() == [
        "000.png",
        "001.png",
    ]
    with caplog.at_level(logging.WARNING), pytest.raises(DataError, match="has no ground-truth"):
        build_manifest("o", mvtec_cfg(root))
    assert "crack/000.png: mask without a matching image" in caplog.text


def test_the_same_tree_through_the_folder_layout_and_a_template(tmp_path):
    root = mvtec_tree(tmp_path / "own", mask_name="{stem}.png")
    cfg = {
        "layout": "folder",
        "root": str(root),
        "categories": {
            "bottle": {
                "normal": ["bottle/train/good/*", "bottle/test/good/*"],
                "abnormal": ["bottle/test/crack/*"],
            }
        },
        "mask": "{root}/{category}/ground_truth/{parent}/{name}",
        "split": {"train_fraction": 0.6, "seed": 0},
    }
    folder = build_manifest("f", cfg)
    tree = build_manifest("t", mvtec_cfg(root, mask_suffix=""))
    pairs = lambda f: dict(zip(f["image_path"], f["mask_path"]))  # noqa: E731
    assert pairs(folder) == pairs(tree)
    assert counts(folder) == {
        ("bottle", "train", "good"): 3,
        ("bottle", "test", "good"): 2,
        ("bottle", "test", "crack"): 2,
    }
    assert "bottle/test/bottle/test/crack/000" in set(folder["sample_id"])


def test_mask_on_a_normal_test_image_must_be_empty(tmp_path):
    root = mvtec_tree(tmp_path / "m")
    mask(root / "bottle" / "ground_truth" / "good" / "001_mask.png", value=0)
    assert build_manifest("m", mvtec_cfg(root))["mask_path"].notna().sum() == 3
    bad = mask(root / "bottle" / "ground_truth" / "good" / "001_mask.png")
    with pytest.raises(DataError, match=rf"{bad}: mask of a normal image has defect pixels"):
        build_manifest("m", mvtec_cfg(root))


def test_category_without_test_images(tmp_path):
    root = mvtec_tree(tmp_path / "m")
    for path in (root / "bottle" / "test").rglob("*.png"):
        path.unlink()
    with pytest.raises(DataError, match=rf"{root}: category 'bottle' has no test images"):
        build_manifest("m", mvtec_cfg(root))


# ------------------------------------------------------------------ BTAD


def btad_tree(root: Path, product: str, image_ext: str, mask_ext: str) -> None:
    base = root / product
    for i in range(3):
        img(base / "train" / "ok" / f"{i:04d}{image_ext}")
    for i in range(2):
        img(base / "test" / "ok" / f"{i:04d}{image_ext}")
        img(base / "test" / "ko" / f"{i:04d}{image_ext}")
        mask(base / "ground_truth" / "ko" / f"{i:04d}{mask_ext}")


def test_btad_products_with_their_image_and_mask_formats(tmp_path):
    root = tmp_path / "BTech_Dataset_transformed"
    btad_tree(root, "01", ".bmp", ".png")
    btad_tree(root, "02", ".png", ".png")
    btad_tree(root, "03", ".bmp", ".bmp")
    frame = build_manifest("b", {"layout": "btad", "root": str(root), "categories": "all"})
    assert sorted(frame["category"].unique()) == ["01", "02", "03"]
    assert set(frame["defect_type"]) == {"good", "ko"}
    assert counts(frame)[("03", "test", "ko")] == 2 and counts(frame)[("01", "train", "good")] == 3
    masks = frame.set_index("sample_id")["mask_path"]
    assert masks["01/test/ko/0001"].endswith("ground_truth/ko/0001.png")
    assert masks["03/test/ko/0001"].endswith("ground_truth/ko/0001.bmp")
    assert masks["01/test/good/0001"] is None


def test_btad_two_masks_for_one_image_is_an_error(tmp_path):
    root = tmp_path / "BTech_Dataset_transformed"
    btad_tree(root, "01", ".bmp", ".png")
    mask(root / "01" / "ground_truth" / "ko" / "0000.bmp")
    with pytest.raises(DataError, match=r"ko/0000\.bmp: several masks match"):
        build_manifest("b", {"layout": "btad", "root": str(root), "categories": ["01"]})


# ------------------------------------------------------------------ VisA

VISA_HEADER = "object,split,label,image,mask\n"


def visa_tree(root: Path, objects=("candle", "pcb1")) -> Path:
    """VisA's tree and split_csv/1cls.csv; masks mark defects with value 1, as VisA's do."""
    lines = [VISA_HEADER]
    for obj in objects:
        for i in range(4):
            rel = f"{obj}/Data/Images/Normal/{i:04d}.JPG"
            img(root / rel, (24, 32))
            lines.append(f"{obj},{'train' if i < 3 else 'test'},normal,{rel},\n")
        for i in range(2):
            rel, mrel = (
                f"{obj}/Data/Images/Anomaly/{i:03d}.JPG",
                f"{obj}/Data/Masks/Anomaly/{i:03d}.png",
            )
            img(root / rel, (24, 32))
            mask(root / mrel, (24, 32), value=1)
            lines.append(f"{obj},test,anomaly,{rel},{mrel}\n")
    (root / "split_csv").mkdir(parents=True)
    (root / "split_csv" / "1cls.csv").write_text("".join(lines))
    return root


def visa_cfg(root: Path, categories="all", **extra) -> dict:
    return {"layout": "visa", "root": str(root), "categories": categories, **extra}


def test_visa_split_file_with_0_1_masks(tmp_path):
    root = visa_tree(tmp_path / "VisA")
    frame = build_manifest("v", visa_cfg(root))
    assert sorted(frame["category"].unique()) == ["candle", "pcb1"]
    assert counts(frame)[("pcb1", "test", "anomaly")] == 2
    assert counts(frame)[("candle", "train", "good")] == 3
    assert "candle/test/anomaly/001" in set(frame["sample_id"])
    assert frame.loc[frame["label"] == 1, "mask_path"].str.endswith(".png").all()
    bad = root / "candle/Data/Masks/Anomaly/000.png"
    with pytest.raises(DataError, match=rf"{bad}: mask .* no defect pixels \(none > 1\)"):
        build_manifest("v", visa_cfg(root, ["candle"], mask_threshold=1))


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda t: t.replace("mask\n", "mask_path\n", 1), "missing column(s) mask"),
        (
            lambda t: t.replace(",train,", ",training,", 1),
            "row at line 2: unknown split 'training'",
        ),
        (lambda t: t.replace(",anomaly,", ",bad,", 1), "row at line 6: unknown label 'bad'"),
    ],
    ids=["missing_column", "unknown_split", "unknown_label"],
)
def test_visa_split_file_problems_name_the_csv_and_row(tmp_path, edit, problem):
    root = visa_tree(tmp_path / "VisA")
    csv = root / "split_csv" / "1cls.csv"
    csv.write_text(edit(csv.read_text()))
    with pytest.raises(DataError) as err:
        build_manifest("v", visa_cfg(root))
    assert str(err.value).startswith(f"{csv}: ") and problem in str(err.value), str(err.value)


def test_visa_missing_csv_unknown_object_and_anomaly_in_train(tmp_path):
    root = visa_tree(tmp_path / "VisA")
    with pytest.raises(DataError, match=rf"{root}: category 'fryum' not found in .*1cls\.csv"):
        build_manifest("v", visa_cfg(root, ["candle", "fryum"]))
    csv = root / "split_csv" / "1cls.csv"
    csv.write_text(csv.read_text().replace("test,anomaly", "train,anomaly", 1))
    with pytest.raises(DataError, match=r"Anomaly/000\.JPG: anomalous image in train split"):
        build_manifest("v", visa_cfg(root))
    csv.unlink()
    with pytest.raises(DataError, match=rf"{csv}: VisA split file not found"):
        build_manifest("v", visa_cfg(root))


# ------------------------------------------------------------------ folder


def folder_cfg(root: Path, categories: dict, **extra) -> dict:
    return {"layout": "folder", "root": str(root), "categories": categories, **extra}


def beside_tree(root: Path) -> Path:
    """A class folder per state, JPEG images of mixed sizes (grayscale normals) and each
    defect's PNG mask beside its image under the same stem, valued 0/128/255."""
    for i in range(5):
        img(root / "screw" / "good" / f"n{i}.jpg", (16 + 4 * i, 20), gray=True)
    for i, size in enumerate([(16, 16), (24, 20), (32, 28)]):
        img(root / "screw" / "scratch" / f"s{i}.jpg", size)
        arr = np.zeros(size, np.uint8)
        arr[1:4, 1:4], arr[5:7, 5:7] = 255, 128
        Image.fromarray(arr).save(root / "screw" / "scratch" / f"s{i}.png")
    return root


SCREW = {"screw": {"normal": ["screw/good/*"], "abnormal": ["screw/scratch/*"]}}


@pytest.mark.parametrize("threshold", [0, 127])
def test_folder_masks_beside_images_mixed_sizes_grayscale(tmp_path, threshold):
    root = beside_tree(tmp_path / "parts")
    cfg = folder_cfg(root, SCREW, mask="{dir}/{stem}.png", mask_threshold=threshold)
    frame = build_manifest("f", cfg)
    assert len(frame) == 8 and frame["image_path"].str.endswith(".jpg").all()
    abnormal = frame[frame["label"] == 1]
    assert set(abnormal["defect_type"]) == {"scratch"}
    assert (abnormal["mask_path"] == abnormal["image_path"].str.replace(".jpg", ".png")).all()
    assert (frame["split"] == "train").sum() == 4  # round(0.8 * 5)
    assert "screw/test/screw/scratch/s2" in set(frame["sample_id"])


def test_folder_threshold_above_every_mask_value_is_an_error(tmp_path):
    root = beside_tree(tmp_path / "parts")
    arr = np.zeros((16, 16), np.uint8)
    arr[2:5, 2:5] = 128
    Image.fromarray(arr).save(root / "screw" / "scratch" / "s0.png")
    cfg = folder_cfg(root, SCREW, mask="{dir}/{stem}.png", mask_threshold=200)
    with pytest.raises(DataError, match=r"s0\.png: mask of an anomalous image has no defect"):
        build_manifest("f", cfg)


def test_folder_orphan_masks_are_listed_not_read_as_images(tmp_path, caplog):
    root = beside_tree(tmp_path / "parts")
    orphan = mask(root / "screw" / "scratch" / "lost.png")
    with caplog.at_level(logging.WARNING):
        frame = build_manifest("f", folder_cfg(root, SCREW, mask="{dir}/{stem}.png"))
    assert frame.attrs["orphan_masks"] == [str(orphan)]
    assert f"{orphan}: mask without a matching image" in caplog.text
    assert str(orphan) not in set(frame["image_path"])


def test_folder_mask_suffix_files_in_normal_folders_are_masks(tmp_path):
    root = beside_tree(tmp_path / "parts")
    for path in (root / "screw" / "scratch").glob("s*.png"):
        path.rename(path.with_name(f"{path.stem}_mask.png"))
    empty = mask(root / "screw" / "good" / "n0_mask.png", (16, 20), value=0)
    orphan = mask(root / "screw" / "good" / "gone_mask.png", value=0)
    frame = build_manifest("f", folder_cfg(root, SCREW, mask="{dir}/{stem}_mask.png"))
    assert len(frame) == 8
    assert frame.set_index("image_path")["mask_path"][str(root / "screw/good/n0.jpg")] == str(empty)
    assert frame.attrs["orphan_masks"] == [str(orphan)]


def test_folder_normal_split_is_seeded(tmp_path):
    root = tmp_path / "d"
    for i in range(10):
        img(root / "a" / "ok" / f"{i}.png")
    img(root / "a" / "bad" / "x.png")
    cats = {"a": {"normal": ["a/ok/*.png"], "abnormal": ["a/bad/*.png"]}}

    def train(seed: int) -> list[str]:
        cfg = folder_cfg(root, cats, split={"train_fraction": 0.7, "seed": seed})
        frame = build_manifest("f", {**cfg, "allow_missing_masks": True})
        return sorted(frame.loc[frame["split"] == "train", "image_path"])

    assert len(train(0)) == 7 and train(0) == train(0)
    assert train(1) != train(0)


def test_folder_globs_recurse_and_paths_may_hold_spaces_and_symlinks(tmp_path):
    root = tmp_path / "my parts"
    for i in range(3):
        img(root / "line 1" / "ok" / "day one" / f"img {i}.png")
    real = img(tmp_path / "elsewhere" / "a.png")
    (root / "line 1" / "ko").mkdir(parents=True)
    (root / "line 1" / "ko" / "a.png").symlink_to(real)
    mask(root / "line 1" / "ko masks" / "a.png")
    cats = {"line 1": {"normal": ["line 1/ok/**/*.png"], "abnormal": ["line 1/ko/*"]}}
    cfg = folder_cfg(root, cats, mask="{root}/{category}/{parent} masks/{name}")
    frame = build_manifest("f", cfg)
    assert len(frame) == 4
    assert frame.loc[frame["label"] == 1, "mask_path"].tolist() == [
        str(root / "line 1" / "ko masks" / "a.png")
    ]
    (root / "line 1" / "ko" / "b.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(DataError, match=r"ko/b\.png: broken symlink"):
        build_manifest("f", cfg)


def test_folder_needs_explicit_categories(tmp_path):
    root = beside_tree(tmp_path / "parts")
    with pytest.raises(ConfigError, match="needs 'categories' as a mapping"):
        build_manifest("f", folder_cfg(root, "all"))
    assert LAYOUTS["folder"].discover(folder_cfg(root, {"b": {}, "a": {}})) == ["a", "b"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mask": "{dir}/{stem}.{ext}"}, r"unknown placeholder\(s\) \['ext'\]"),
        ({"split": {"train_fraction": 1.5}}, "train_fraction must be a number in"),
        ({"categories": {"screw": {"normal": ["/abs/*"], "abnormal": []}}}, "must be relative"),
        ({"mask_threshold": -1}, "mask_threshold must be an integer >= 0"),
    ],
    ids=["placeholder", "fraction", "absolute_glob", "threshold"],
)
def test_folder_config_mistakes(tmp_path, change, message):
    root = beside_tree(tmp_path / "parts")
    with pytest.raises(ConfigError, match=rf"dataset 'f': .*{message}"):
        build_manifest("f", {**folder_cfg(root, SCREW, mask="{dir}/{stem}.png"), **change})


def test_folder_duplicate_ids_and_overlapping_globs(tmp_path):
    root = beside_tree(tmp_path / "parts")
    img(root / "screw" / "good" / "n0.png", (16, 20))
    cfg = folder_cfg(root, {"screw": {"normal": ["screw/good/*"], "abnormal": []}})
    with pytest.raises(
        DataError, match=r"good/n0\.png: duplicate sample id: same name as \S+good/n0\.jpg"
    ):
        build_manifest("f", {**cfg, "allow_missing_masks": True})
    overlap = {"screw": {"normal": ["screw/*/*.jpg"], "abnormal": ["screw/scratch/*.jpg"]}}
    with pytest.raises(DataError, match=r"s0\.jpg: matched by both a normal and an abnormal"):
        build_manifest("f", folder_cfg(root, overlap))


def test_folder_without_masks_keeps_anomalies_only_when_allowed(tmp_path):
    root = beside_tree(tmp_path / "parts")
    cats = {"screw": {"normal": ["screw/good/*.jpg"], "abnormal": ["screw/scratch/*.jpg"]}}
    with pytest.raises(DataError, match=r"s0\.jpg: anomalous test image has no ground-truth mask"):
        build_manifest("f", folder_cfg(root, cats))
    frame = build_manifest("f", folder_cfg(root, cats, allow_missing_masks=True))
    assert frame.loc[frame["label"] == 1, "note"].eq("missing_mask").all()
    assert frame.loc[frame["label"] == 0, "note"].eq("").all()


def test_folder_masks_of_abnormal_png_images_named_like_them_leave_no_image(tmp_path):
    root = tmp_path / "d"
    img(root / "a" / "ok" / "0.png")
    img(root / "a" / "ok" / "1.png")
    mask(root / "a" / "bad" / "1.png")
    cats = {"a": {"normal": ["a/ok/*"], "abnormal": ["a/bad/*"]}}
    cfg = folder_cfg(root, cats, mask="{dir}/{stem}.png", split={"train_fraction": 0.5})
    frame = build_manifest("f", cfg)
    assert len(frame) == 2 and frame.attrs["orphan_masks"] == [str(root / "a/bad/1.png")]
    with pytest.raises(DataError, match=r"no image matches its globs \(1 matched files are masks"):
        build_manifest(
            "f",
            folder_cfg(
                root, {"a": {"normal": [], "abnormal": ["a/bad/*"]}}, mask="{dir}/{stem}.png"
            ),
        )


# ------------------------------------------------------------------ files and names


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp"])
def test_truncated_images_are_caught(tmp_path, suffix):
    root = mvtec_tree(tmp_path / "m")
    bad = root / "bottle" / "train" / "good" / f"009{suffix}"
    img(bad, (32, 32))
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size * 2 // 3])
    with pytest.raises(DataError, match=rf"{bad}: cannot decode image"):
        build_manifest("m", mvtec_cfg(root))


def test_non_utf8_name_found_by_a_glob_is_a_clear_error(tmp_path):
    root = beside_tree(tmp_path / "parts")
    name = os.fsdecode(os.fsencode(str(root / "screw" / "good")) + b"/caf\xe9.jpg")
    img(Path(name), gray=True)
    with pytest.raises(DataError, match="file name is not valid UTF-8") as err:
        build_manifest("f", folder_cfg(root, SCREW, mask="{dir}/{stem}.png"))
    assert r"caf\udce9.jpg" in str(err.value)
    str(err.value).encode("utf-8")  # the message itself prints anywhere


def test_unknown_layout_and_category_and_empty_root(tmp_path):
    root = mvtec_tree(tmp_path / "m")
    with pytest.raises(ConfigError, match=r"unknown layout 'mvtek' \(known: btad, folder, mpdd"):
        build_manifest("m", {**mvtec_cfg(root), "layout": "mvtek"})
    with pytest.raises(DataError, match=rf"{root}: category 'cable' not found"):
        build_manifest("m", mvtec_cfg(root, ["bottle", "cable"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no categories found"):
        build_manifest("m", mvtec_cfg(tmp_path / "empty", "all"))


def test_grayscale_and_16_bit_images_load_as_rgb(tmp_path):
    gray = img(tmp_path / "g.png", (8, 12), gray=True)
    rgb = load_image(gray)
    assert rgb.shape == (8, 12, 3) and rgb.dtype == np.uint8
    assert (rgb[..., 0] == np.asarray(Image.open(gray))).all()
    deep = tmp_path / "d.png"
    Image.fromarray(np.linspace(1000, 3000, 96, dtype=np.uint16).reshape(8, 12)).save(deep)
    assert Image.open(deep).mode.startswith("I;16")
    out = load_image(deep)
    assert out.shape == (8, 12, 3) and out.min() == 0 and out.max() == 255


def test_mask_threshold_helper():
    assert mask_threshold({}) == 0 and mask_threshold({"mask_threshold": 127}) == 127
    for bad in (-1, 0.5, True, "10"):
        with pytest.raises(ConfigError):
            mask_threshold({"mask_threshold": bad})
