"""The bad-input catalogue: every case is one clear error naming the file and the problem.

Each case builds a tiny dataset or config, checks the error (or, where the policy is to warn,
the warning and the manifest column), checks that no output was left behind, then corrects the
input and checks that the same step succeeds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import write_png

from iadbench.backbones.registry import spec_for
from iadbench.backbones.weights import resolve_weights
from iadbench.config import check_config_file, prepare_config
from iadbench.errors import CacheError, ConfigError, DataError, WeightsError
from iadbench.features.store import load_features, write_features
from iadbench.io import save_npy
from iadbench.pipeline import make_manifest

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"
RNG = np.random.default_rng(0)


def image(size: int = 16, gray: bool = False) -> np.ndarray:
    shape = (size, size) if gray else (size, size, 3)
    return RNG.integers(0, 255, shape, np.uint8)


def defect_mask(size: int = 16, value: int = 255) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[3:8, 3:8] = value
    return mask


def mvtec_tree(root: Path, category: str = "widget") -> Path:
    """A valid miniature MVTec AD category: 3 train good, 2 test good, 2 'dent' with masks."""
    cat = root / category
    for i in range(3):
        write_png(cat / "train" / "good" / f"{i:03d}.png", image())
    for i in range(2):
        write_png(cat / "test" / "good" / f"{i:03d}.png", image())
        write_png(cat / "test" / "dent" / f"{i:03d}.png", image())
        write_png(cat / "ground_truth" / "dent" / f"{i:03d}_mask.png", defect_mask())
    return root


def mvtec_cfg(root: Path, **extra) -> dict:
    return {"layout": "mvtec", "root": str(root), "categories": ["widget"], **extra}


# ------------------------------------------------------------------ dataset cases
# Each builder breaks a valid tree and returns (config, culprit path, problem words, fix).

Case = tuple[dict, str, str, Callable[[], None]]


def _replace(path: Path, data: bytes | None = None) -> Callable[[], None]:
    """A fix that restores ``path`` to a valid PNG (or the given bytes)."""

    def fix() -> None:
        path.unlink(missing_ok=True)
        if data is None:
            write_png(path, image())
        else:
            path.write_bytes(data)

    return fix


def corrupt_file(root: Path) -> Case:
    bad = root / "widget/test/good/000.png"
    bad.write_bytes(b"this is not an image at all" * 10)
    return mvtec_cfg(root), str(bad), "decode", _replace(bad)


def truncated_png(root: Path) -> Case:
    bad = root / "widget/train/good/001.png"
    write_png(bad, image(64))
    bad.write_bytes(bad.read_bytes()[:200])
    return mvtec_cfg(root), str(bad), "", _replace(bad)


def zero_byte_image(root: Path) -> Case:
    bad = root / "widget/test/dent/001.png"
    bad.write_bytes(b"")
    return mvtec_cfg(root), str(bad), "empty", _replace(bad)


def unsupported_extension(root: Path) -> Case:
    bad = root / "widget/train/good/notes.txt"
    bad.write_text("camera settings")
    return mvtec_cfg(root), str(bad), "unsupported", lambda: bad.unlink()


def mask_size_mismatch(root: Path) -> Case:
    bad = root / "widget/ground_truth/dent/000_mask.png"
    write_png(bad, defect_mask(20))
    return mvtec_cfg(root), str(bad), "size", lambda: write_png(bad, defect_mask())


def empty_mask_on_abnormal(root: Path) -> Case:
    bad = root / "widget/ground_truth/dent/001_mask.png"
    write_png(bad, np.zeros((16, 16), np.uint8))
    return mvtec_cfg(root), str(bad), "no defect pixels", lambda: write_png(bad, defect_mask())


def defect_on_normal_mask(root: Path) -> Case:
    root = Path(root)
    img_dir = root / "parts"
    for i in range(4):
        write_png(img_dir / "good" / f"n{i}.png", image())
        write_png(img_dir / "good" / f"n{i}_mask.png", np.zeros((16, 16), np.uint8))
    write_png(img_dir / "bad" / "a0.png", image())
    write_png(img_dir / "bad" / "a0_mask.png", defect_mask())
    bad = write_png(img_dir / "good" / "n1_mask.png", defect_mask())
    cfg = {
        "layout": "folder",
        "root": str(root),
        "categories": {"parts": {"normal": ["parts/good/*.png"], "abnormal": ["parts/bad/*.png"]}},
        "mask": "{dir}/{stem}_mask.png",
        "split": {"train_fraction": 0.5, "seed": 0},
    }
    fix = lambda: write_png(bad, np.zeros((16, 16), np.uint8))  # noqa: E731
    return cfg, str(bad), "normal", fix


def missing_mask(root: Path) -> Case:
    gone = root / "widget/ground_truth/dent/001_mask.png"
    gone.unlink()
    image_path = root / "widget/test/dent/001.png"
    return mvtec_cfg(root), str(image_path), "mask", lambda: write_png(gone, defect_mask())


def empty_category(root: Path) -> Case:
    (root / "hollow" / "train" / "good").mkdir(parents=True)
    (root / "hollow" / "test" / "good").mkdir(parents=True)
    cfg = {**mvtec_cfg(root), "categories": ["widget", "hollow"]}

    def fix() -> None:
        mvtec_tree(root, "hollow")

    return cfg, "hollow", "no images", fix


def no_normal_training_images(root: Path) -> Case:
    train = root / "widget/train/good"
    moved = [p.read_bytes() for p in sorted(train.iterdir())]
    for p in train.iterdir():
        p.unlink()

    def fix() -> None:
        for i, data in enumerate(moved):
            (train / f"{i:03d}.png").write_bytes(data)

    return mvtec_cfg(root), "widget", "no normal training images", fix


def duplicate_sample_ids(root: Path) -> Case:
    dup = root / "widget/train/good/000.jpg"
    Image = pytest.importorskip("PIL.Image")
    Image.fromarray(image()).save(dup)
    return mvtec_cfg(root), "widget/train/good/000", "duplicate", lambda: dup.unlink()


def unknown_category(root: Path) -> Case:
    cfg = {**mvtec_cfg(root), "categories": ["widget", "gizmo"]}
    return cfg, "gizmo", "not found", lambda: mvtec_tree(root, "gizmo")


def broken_symlink(root: Path) -> Case:
    link = root / "widget/train/good/003.png"
    link.symlink_to(root / "nowhere.png")

    def fix() -> None:
        link.unlink()
        link.symlink_to(root / "widget/train/good/000.png")

    return mvtec_cfg(root), str(link), "symlink", fix


DATASET_CASES = [
    corrupt_file,
    truncated_png,
    zero_byte_image,
    unsupported_extension,
    mask_size_mismatch,
    empty_mask_on_abnormal,
    defect_on_normal_mask,
    missing_mask,
    empty_category,
    no_normal_training_images,
    duplicate_sample_ids,
    unknown_category,
    broken_symlink,
]


@pytest.mark.parametrize("case", DATASET_CASES, ids=lambda f: f.__name__)
def test_bad_dataset_gives_one_clear_error_no_output_and_a_fixed_rerun_works(case, tmp_path):
    root = mvtec_tree(tmp_path / "data")
    cfg, culprit, problem, fix = case(root)
    out = tmp_path / "results" / "manifest.parquet"
    with pytest.raises(DataError) as err:
        make_manifest("d", cfg, out)
    message = str(err.value)
    assert culprit in message, message
    assert problem.lower() in message.lower(), message
    assert not out.exists()
    assert not list(out.parent.glob("*")) if out.parent.exists() else True
    fix()
    frame = make_manifest("d", cfg, out)
    assert out.exists() and len(frame) > 0


def test_unknown_layout_is_a_config_error_listing_the_known_layouts(tmp_path):
    root = mvtec_tree(tmp_path / "data")
    out = tmp_path / "manifest.parquet"
    with pytest.raises(ConfigError, match=r"unknown layout 'mvtek'.*mvtec"):
        make_manifest("d", mvtec_cfg(root, layout="mvtek"), out)
    assert not out.exists()
    make_manifest("d", mvtec_cfg(root), out)


def test_abnormal_image_without_mask_can_be_kept_for_image_metrics_only(tmp_path):
    root = mvtec_tree(tmp_path / "data")
    (root / "widget/ground_truth/dent/001_mask.png").unlink()
    frame = make_manifest("d", mvtec_cfg(root, allow_missing_masks=True), tmp_path / "m.parquet")
    row = frame.set_index("sample_id").loc["widget/test/dent/001"]
    assert row["note"] == "missing_mask" and row["mask_path"] is None
    assert (
        frame.drop(index=frame.index[frame["sample_id"] == "widget/test/dent/001"])["note"] == ""
    ).all()


def test_mask_without_image_is_a_warning_and_listed(tmp_path, caplog):
    root = mvtec_tree(tmp_path / "data")
    orphan = write_png(root / "widget/ground_truth/dent/009_mask.png", defect_mask())
    out = tmp_path / "m.parquet"
    with caplog.at_level("WARNING"):
        make_manifest("d", mvtec_cfg(root), out)
    assert str(orphan) in caplog.text
    assert str(orphan) in pd.read_parquet(out).attrs["orphan_masks"]


def test_spaces_and_unicode_in_paths_are_read(tmp_path):
    root = mvtec_tree(tmp_path / "my data ü")
    frame = make_manifest("d", mvtec_cfg(root), tmp_path / "m.parquet")
    assert frame["image_path"].str.contains("my data ü").all()


def test_non_utf8_file_name_is_a_clear_error(tmp_path):
    root = mvtec_tree(tmp_path / "data")
    name = os.fsencode(str(root / "widget/train/good")) + b"/bad\xff.png"
    write_png(Path(os.fsdecode(name)), image())
    out = tmp_path / "m.parquet"
    with pytest.raises(DataError, match="UTF-8") as err:
        make_manifest("d", mvtec_cfg(root), out)
    assert "bad" in str(err.value)
    assert not out.exists()
    os.unlink(name)
    make_manifest("d", mvtec_cfg(root), out)


def test_symlinked_images_are_followed(tmp_path):
    real = mvtec_tree(tmp_path / "real")
    linked = tmp_path / "linked"
    (linked / "widget").mkdir(parents=True)
    for sub in ("train", "test", "ground_truth"):
        (linked / "widget" / sub).symlink_to(real / "widget" / sub)
    frame = make_manifest("d", mvtec_cfg(linked), tmp_path / "m.parquet")
    assert len(frame) == 7


# ------------------------------------------------------------------ config cases


def load(tmp_path: Path, text: str) -> tuple[dict, dict]:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    check_config_file(path)
    return prepare_config(yaml.safe_load(path.read_text()), SCHEMA, [str(path)])


GOOD = """
datasets:
  demo: {root: data, categories: [widget], resize: 256}
backbones:
  lite0: {model: efficientnet_lite0}
methods:
  pc: {kind: patchcore, backbone: lite0, coreset: 0.1}
"""

CONFIG_CASES = {
    "wrong_type": ("resize: 256}", "resize: big}", "datasets.demo.resize"),
    "unknown_key": ("resize: 256}", "resize: 256, colour: red}", "colour"),
    "negative_fraction": ("coreset: 0.1", "coreset: -0.1", "methods.pc.coreset"),
    "unknown_backbone": (
        "model: efficientnet_lite0",
        "model: efficientnet_b99",
        "efficientnet_b99",
    ),
    "unknown_layout_in_config": ("root: data,", "root: data, layout: mvtek,", "mvtek"),
    "method_on_undefined_backbone": ("backbone: lite0,", "backbone: lite9,", "lite9"),
    "duplicate_dataset_name": (
        "  demo: {root: data, categories: [widget], resize: 256}",
        "  demo: {root: data, categories: [widget], resize: 256}\n  demo: {root: b}",
        "'demo' appears twice",
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_bad_config_is_rejected_at_start_up_naming_file_and_key(name, tmp_path):
    good, bad, words = CONFIG_CASES[name]
    text = GOOD
    assert good in text
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text.replace(good, bad, 1))
    assert "config.yaml" in str(err.value) and words in str(err.value), str(err.value)
    config, _ = load(tmp_path, text)
    assert config["methods"]["pc"]["coreset"] == 0.1


def test_missing_weights_file_names_the_path():
    with pytest.raises(WeightsError, match="/no/such/weights.pth"):
        resolve_weights("/no/such/weights.pth", spec_for("resnet18"))


# ------------------------------------------------------------------ cache and write cases


def _features(tmp_path: Path, values: np.ndarray, config_hash: str = "abc") -> tuple[Path, Path]:
    npy, index = tmp_path / "train.npy", tmp_path / "train.parquet"
    frame = pd.DataFrame({"sample_id": [f"s{i}" for i in range(len(values))]})
    write_features(npy, index, frame, {"config_hash": config_hash}, values)
    return npy, index


def test_nan_in_a_feature_file_is_refused_naming_file_and_sample(tmp_path):
    values = np.ones((3, 2, 2, 4), np.float16)
    values[1, 0, 1, 2] = np.nan
    npy, index = _features(tmp_path, values)
    with pytest.raises(CacheError, match=r"train.npy: contains NaN/Inf .*s1"):
        load_features(npy, index, expect_hash="abc")
    values[1, 0, 1, 2] = 0
    npy, index = _features(tmp_path, values)
    assert load_features(npy, index, expect_hash="abc").features.shape == (3, 2, 2, 4)


def test_features_from_another_backbone_config_are_never_reused(tmp_path):
    npy, index = _features(tmp_path, np.ones((2, 2, 2, 4), np.float16), config_hash="other")
    with pytest.raises(CacheError, match="refusing to reuse"):
        load_features(npy, index, expect_hash="abc")
    npy, index = _features(tmp_path, np.ones((2, 2, 2, 4), np.float16), config_hash="abc")
    load_features(npy, index, expect_hash="abc")


def test_truncated_feature_file_is_refused(tmp_path):
    npy, index = _features(tmp_path, np.ones((4, 8, 8, 16), np.float16))
    npy.write_bytes(npy.read_bytes()[:300])
    with pytest.raises(CacheError, match="train.npy"):
        load_features(npy, index)


def test_disk_full_while_writing_leaves_the_previous_target_untouched(tmp_path, monkeypatch):
    target = tmp_path / "maps.npy"
    save_npy(target, np.zeros(3))

    def full(fh, array, **kwargs):
        fh.write(b"\x93NUMPY partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(OSError, match="No space left"):
        save_npy(target, np.ones(1000))
    monkeypatch.undo()
    assert np.load(target).tolist() == [0, 0, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps.npy"]
    save_npy(target, np.ones(4))
    assert np.load(target).tolist() == [1, 1, 1, 1]


KILLED_WRITER = """
import sys, time
import numpy as np
from iadbench.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "wb") as fh:
        fh.write(b"half of the bytes")
        fh.flush()
        print("writing", flush=True)
        time.sleep(60)
"""


def test_a_job_killed_mid_write_leaves_no_target_and_a_rerun_completes(tmp_path):
    target = tmp_path / "out" / "scores.npy"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not target.exists()
    save_npy(target, np.arange(3))
    assert np.load(target).tolist() == [0, 1, 2]
