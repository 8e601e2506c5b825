"""Building the DAG: no deep-learning imports at parse time, lint and format clean, and the
long example configs plan (they run in full by hand, not in CI)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_workflow import REPO, snakemake_cmd

from iadbench.config import method_datasets, prepare_config

HEAVY = ("torch", "faiss", "open_clip", "timm")
CONFIGS = [
    "config/config.yaml",
    "config/examples/experiments.yaml",
    "config/examples/zero_shot.yaml",
    "config/examples/crane.yaml",
    "config/examples/fe_clip_cross.yaml",
    "config/examples/welding.yaml",
    "config/examples/cascade_demo.yaml",
    "config/examples/dino.yaml",
]


def with_roots(config: str, tmp_path: Path) -> Path:
    """A working directory in which the config's relative dataset roots exist, as empty category
    folders: the DAG build checks them, and experiments.yaml points at real MVTec AD data."""
    workdir = tmp_path / "wd"
    workdir.mkdir(exist_ok=True)
    for dataset in yaml.safe_load((REPO / config).read_text())["datasets"].values():
        relative = not Path(dataset.get("root", "/")).is_absolute()
        if relative and "demo" not in dataset and isinstance(dataset.get("categories"), list):
            for category in dataset["categories"]:
                (workdir / dataset["root"] / category).mkdir(parents=True, exist_ok=True)
    return workdir


def dry_run(config: str, workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    workdir = with_roots(config, workdir)
    cmd = [
        sys.executable, "-X", "importtime", *snakemake_cmd(workdir, "-n", *extra)[1:]
    ]  # fmt: skip
    cmd[cmd.index("--configfile") + 1] = str(REPO / config)
    return subprocess.run(cmd, capture_output=True, text=True)


def imported_modules(stderr: str) -> set[str]:
    """Top-level package names from ``-X importtime`` lines (``... | cumulative | name``)."""
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", stderr, re.MULTILINE)
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize("config", CONFIGS)
def test_building_the_dag_imports_no_deep_learning_library(config, tmp_path):
    proc = dry_run(config, tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    modules = imported_modules(proc.stderr)
    assert "snakemake" in modules and "iadbench" in modules  # the parse did import things
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


def test_the_experiments_grid_plans_every_cell(tmp_path):
    proc = dry_run("config/examples/experiments.yaml", tmp_path, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.MULTILINE)}
    raw = yaml.safe_load((REPO / "config/examples/experiments.yaml").read_text())
    config, _ = prepare_config(raw, REPO / "config/schema.yaml", ["experiments.yaml"])
    cells = sum(
        len(config["datasets"][d]["categories"])
        for m in config["methods"]
        for d in method_datasets(config, m)
    )
    assert stats["fit"] == stats["score"] == stats["metrics"] == cells
    assert stats["score_cross"] == 6 and stats["cross_summary"] == 1


@pytest.mark.parametrize("config", CONFIGS)
def test_snakemake_lint_is_clean(config, tmp_path):
    cmd = [*snakemake_cmd(with_roots(config, tmp_path), "--lint")]
    cmd[cmd.index("--configfile") + 1] = str(REPO / config)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0 and "Lints for" not in proc.stdout + proc.stderr, proc.stdout


def test_snakefmt_check_passes():
    proc = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
