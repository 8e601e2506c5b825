"""``iadbench init`` on miniature trees of each layout, and the start-up checks it relies on:
backbones named by registry name, dataset roots and categories that must exist at DAG build."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from test_layouts import btad_tree, mvtec_tree, visa_tree
from test_workflow import REPO, snakemake_cmd

from iadbench.cli import main
from iadbench.config import prepare_config
from iadbench.data.detect import detect
from iadbench.data.weld_demo import generate_weld_demo
from iadbench.errors import ConfigError
from iadbench.startup import check_dataset_paths

SCHEMA = REPO / "config/schema.yaml"


@pytest.fixture(scope="module")
def weld_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("weld") / "intel"
    generate_weld_demo(root, seed=1, n_train=2, n_test_good=1, n_per_defect=1)
    return root


def make_tree(kind: str, tmp_path: Path, weld_root: Path) -> Path:
    root = tmp_path / kind
    if kind == "mvtec":
        mvtec_tree(root, categories=("bottle", "metal_nut"))
    elif kind == "mpdd":
        mvtec_tree(root, categories=("tubes", "connector"))
    elif kind == "btad":
        btad_tree(root, "01", ".bmp", ".png")
        btad_tree(root, "03", ".bmp", ".bmp")
    elif kind == "visa":
        visa_tree(root)
    else:
        shutil.copytree(weld_root, root)
    return root


def run_init(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["init", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


EXPECTED = {
    # layout, dataset name, categories, a line of the inventory on stderr
    "mvtec": ("mvtec", "mvtec_ad", ["bottle", "metal_nut"], "bottle     3      2          2"),
    "mpdd": ("mpdd", "mpdd", ["connector", "tubes"], "tubes      3      2          2"),
    "btad": ("btad", "btad", ["01", "03"], "01        3      2          2               2"),
    "visa": ("visa", "visa", ["candle", "pcb1"], "pcb1      3      1          2               2"),
    "weld": ("weld", "weld", ["weld"], "weld      2      1         4"),
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_init_detects_the_layout_lists_categories_and_writes_a_valid_config(
    kind, tmp_path, weld_root, capsys
):
    root = make_tree(kind, tmp_path, weld_root)
    code, out, err = run_init(capsys, "--root", str(root))
    assert code == 0, err
    layout, name, categories, row = EXPECTED[kind]
    config = yaml.safe_load(out)  # stdout is the YAML alone; the inventory went to stderr
    dataset = config["datasets"][name]
    assert dataset["layout"] == layout and dataset["root"] == str(root)
    assert dataset["categories"] == categories  # BTAD's "01" stays a string
    assert f"layout: {layout}" in err and row in err
    assert "# " in out and "backbones:" in out  # commented, backbones written out
    method = "view_patchcore" if kind == "weld" else "patchcore"
    assert config["methods"][method]["kind"] == method
    concrete, _ = prepare_config(config, SCHEMA, ["my.yaml"])
    check_dataset_paths(concrete)
    assert concrete["backbones"]["efficientnet_lite0"]["weights"] == "pretrained"


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_the_written_config_dry_runs(kind, tmp_path, weld_root, capsys):
    root = make_tree(kind, tmp_path, weld_root)
    methods = {"mvtec": ["--methods", "patchcore,padim,winclip,crane"]}.get(kind, [])
    code, out, err = run_init(capsys, "--root", str(root), *methods)
    assert code == 0, err
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(out)
    proc = subprocess.run(snakemake_cmd(workdir, "-n"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "manifest" in proc.stdout and "This was a dry-run" in proc.stdout


def test_an_unrecognised_tree_says_what_was_looked_for_and_suggests_folder(tmp_path, capsys):
    (tmp_path / "pics" / "a").mkdir(parents=True)
    (tmp_path / "pics" / "a" / "x.png").write_bytes(b"")
    code, out, err = run_init(capsys, "--root", str(tmp_path / "pics"))
    assert code == 2 and out == ""
    assert "could not recognise the layout" in err and "split_csv/1cls.csv" in err
    assert "layout: folder" in err


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ("category", "looks like one category; pass its parent"),
        ("normal_name", "train/ holds normal"),
        ("visa_without_csv", "not its split file split_csv/1cls.csv"),
    ],
)
def test_near_misses_are_named(shape, message, tmp_path):
    root = tmp_path / "data"
    if shape == "category":
        mvtec_tree(tmp_path / "m")
        root = tmp_path / "m" / "bottle"
    elif shape == "normal_name":
        mvtec_tree(root)
        (root / "bottle" / "train" / "good").rename(root / "bottle" / "train" / "normal")
    else:
        visa_tree(root)
        shutil.rmtree(root / "split_csv")
    with pytest.raises(Exception, match=message):
        detect(root)


def test_options_pick_categories_name_and_backbone(tmp_path, capsys):
    root = mvtec_tree(tmp_path / "m", categories=("bottle", "cable"))
    code, out, err = run_init(
        capsys, "--root", str(root), "--categories", "cable", "--name", "mine",
        "--backbone", "resnet18", "--methods", "padim",
    )  # fmt: skip
    assert code == 0, err
    config = yaml.safe_load(out)
    assert config["datasets"]["mine"]["categories"] == ["cable"]
    padim = {"kind": "padim", "backbone": "resnet18_padim", "seed": 0}
    assert config["methods"] == {"padim": padim}
    # PaDiM's published geometry (METHODS §1.2): layer1-3 raw, nearest to layer1's grid
    assert config["backbones"]["resnet18_padim"] == {
        "model": "resnet18", "weights": "pretrained", "layers": [1, 2, 3], "patch_size": 1,
        "upsample": "nearest",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "fe_clip"], "train_sets"),
        (["--methods", "cascade"], "uses: gate, heatmap"),
        (["--methods", "nope"], "unknown kind 'nope'"),
        (["--categories", "cable"], "cable not found"),
        (["--layout", "folder"], "globs to write by hand"),
        (["--backbone", "clip_vit_b32"], "not a registered CNN/ViT"),
    ],
)
def test_what_init_cannot_write_is_refused_with_the_reason(args, message, tmp_path, capsys):
    root = mvtec_tree(tmp_path / "m")
    code, out, err = run_init(capsys, "--root", str(root), *args)
    assert code == 2 and out == "" and message in err


def test_a_multimodal_kind_on_images_and_an_image_kind_on_weld_are_refused(
    tmp_path, weld_root, capsys
):
    code, _, err = run_init(capsys, "--root", str(mvtec_tree(tmp_path / "m")), "--methods",
                            "view_patchcore")  # fmt: skip
    assert code == 2 and "multimodal runs" in err
    code, _, err = run_init(capsys, "--root", str(weld_root), "--methods", "patchcore")
    assert code == 2 and "view_patchcore" in err


# --- start-up checks --------------------------------------------------------------------


def test_a_registry_name_as_backbone_gets_an_entry_with_the_schema_defaults():
    grid = {"backbone": ["mine", "efficientnet_b0"]}
    raw = {
        "datasets": {"d": {"root": "x", "categories": ["a"]}},
        "methods": {
            "pc": {"kind": "patchcore", "backbone": "resnet18"},
            "grid": {"kind": "padim", "backbone": "mine", "grid": grid},
        },
        "backbones": {"mine": {"model": "efficientnet_lite0"}},
    }  # fmt: skip
    config, _ = prepare_config(raw, SCHEMA, ["x.yaml"])
    assert config["backbones"]["resnet18"] == {
        "model": "resnet18", "weights": "pretrained", "patch_size": 3, "padding": "zeros",
        "upsample": "bilinear", "normalize": "model", "dim": None, "seed": 0, "batch_size": 16,
        "input_size": None, "resample": "bilinear",
        "smaller_edge": None, "token_norm": False,
    }  # fmt: skip
    assert config["backbones"]["efficientnet_b0"]["model"] == "efficientnet_b0"
    assert set(config["backbones"]) == {"mine", "resnet18", "efficientnet_b0"}
    raw = {"datasets": raw["datasets"], "methods": {"pc": {"kind": "patchcore", "backbone": "r9"}}}
    with pytest.raises(ConfigError, match="backbone 'r9' is not defined under backbones"):
        prepare_config(raw, SCHEMA, ["x.yaml"])


def _dataset(root, categories, layout="mvtec") -> dict:
    return {"datasets": {"d": {"layout": layout, "root": str(root), "categories": categories}}}


def test_check_dataset_paths(tmp_path):
    root = mvtec_tree(tmp_path / "m")
    check_dataset_paths(_dataset(root, ["bottle"]))
    check_dataset_paths(_dataset(root, "all"))
    check_dataset_paths({"datasets": {"demo": {"root": "nowhere", "categories": ["brick"],
                                               "demo": {}}}})  # fmt: skip
    with pytest.raises(ConfigError, match=f"root {tmp_path / 'none'}: does not exist"):
        check_dataset_paths(_dataset(tmp_path / "none", ["bottle"]))
    with pytest.raises(ConfigError, match=f"no folder {root / 'botle'} .on disk: bottle"):
        check_dataset_paths(_dataset(root, ["bottle", "botle"]))
    with pytest.raises(ConfigError, match="no mvtec categories found"):
        check_dataset_paths(_dataset(tmp_path, "all"))
    visa = visa_tree(tmp_path / "v")
    with pytest.raises(ConfigError, match="'pcb9' not in .*split_csv/1cls.csv .on disk: candle"):
        check_dataset_paths(_dataset(visa, ["pcb9"], "visa"))


@pytest.mark.parametrize("problem", ["root", "category"])
def test_a_missing_root_or_category_fails_the_dry_run_naming_the_path(problem, tmp_path):
    root = mvtec_tree(tmp_path / "m")
    if problem == "root":
        root, categories, expected = tmp_path / "gone", ["bottle"], str(tmp_path / "gone")
    else:
        categories, expected = ["bottle", "botle"], str(root / "botle")
    config = {**_dataset(root, categories), "methods": {"pc": {"kind": "patchcore",
                                                              "backbone": "resnet18"}}}  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run(snakemake_cmd(tmp_path, "-n"), capture_output=True, text=True)
    assert proc.returncode != 0
    assert expected in proc.stdout + proc.stderr
