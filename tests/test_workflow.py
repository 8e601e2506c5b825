"""End-to-end Snakemake runs in a temporary directory: outputs, no-op rerun, incrementality."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import write_png

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "datasets": {
        "demo": {
            "layout": "mvtec",
            "root": "resources/datasets/demo",
            "categories": ["brick", "gravel"],
            "demo": {
                "seed": 0,
                "image_size": 64,
                "n_train": 6,
                "n_test_good": 3,
                "n_per_defect": 1,
            },
            "resize": 64,
            "crop": 64,
        }
    },
    "backbones": {"lite0": {"model": "efficientnet_lite0", "weights": "pretrained"}},
    "methods": {"pc": {"kind": "patchcore", "backbone": "lite0", "coreset": 0.2}},
}


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    """The workflow on ``workdir/config.yaml``, run from this checkout's Snakefile."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        *args,
    ]


def snakemake(workdir: Path, *args: str, env: dict | None = None) -> str:
    cmd = snakemake_cmd(workdir, "--cores", "2", "--resources", "gpu=1", *args)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def planned_rules(workdir: Path, env: dict | None = None) -> dict[str, int]:
    """Rule -> job count from a dry run's 'Job stats' table ({} when nothing is to be done)."""
    out = snakemake(workdir, "--dry-run", env=env)
    if "Nothing to be done" in out:
        return {}
    lines = out.split("Job stats:")[1].splitlines()[3:]
    stats = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        stats[parts[0]] = int(parts[1])
    return stats


def write_config(workdir: Path, config: dict) -> None:
    """``workdir/config.yaml``, with warm job processes on unless ``config`` says otherwise: the
    suite's runs use them (off by default), and a test compares them with ``warm_jobs: false``."""
    (workdir / "config.yaml").write_text(yaml.safe_dump({"warm_jobs": True, **config}))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("wf")
    write_config(workdir, TINY)
    snakemake(workdir)
    return workdir


@pytest.mark.e2e
def test_full_run_produces_summary_and_per_category_results(finished_run):
    summary = pd.read_csv(finished_run / "results/summary/metrics.csv")
    assert set(summary["category"]) == {"brick", "gravel", "macro_mean", "micro"}
    assert set(summary["average"]) == {"per_category", "macro", "micro"}
    assert summary["weights"].str.contains("efficientnet-lite0").all()
    for cat in ("brick", "gravel"):
        assert (finished_run / f"results/demo/metrics/pc/{cat}/test.json").exists()
        scores = pd.read_parquet(finished_run / f"results/demo/scores/pc/{cat}/test/scores.parquet")
        assert len(scores) == 3 + 4 and scores["score"].notna().all()
    assert (finished_run / "results/summary/metrics.md").read_text().count("macro") >= 1


@pytest.mark.e2e
def test_timings_list_every_job_and_the_report_shows_them(finished_run):
    timings = pd.read_csv(finished_run / "results/summary/timings.csv")
    counts = timings["rule"].value_counts().to_dict()
    # Collected before the report and its own benchmark: neither is listed on a first run.
    assert counts == {
        "demo_dataset": 1, "manifest": 1, "extract": 4, "fit": 2, "score": 2, "metrics": 2,
        "micro": 1, "summary": 1,
    }  # fmt: skip
    assert set(timings.loc[timings["rule"].isin(["fit", "score", "metrics"]), "method"]) == {"pc"}
    assert timings.loc[timings["rule"] == "extract", "method"].isna().all()
    assert (timings["seconds"] > 0).all()
    assert "fit,demo/pc/brick,pc," in (finished_run / "results/summary/timings.csv").read_text()
    html = (finished_run / "results/summary/report.html").read_text()
    assert '<section id="time-by-stage">' in html and "Time by rule: 14 jobs" in html


@pytest.mark.e2e
def test_two_runs_with_the_same_seeds_are_byte_identical(finished_run, tmp_path):
    """The first run's jobs ran in warm forks, this one's each in a fresh interpreter."""
    write_config(tmp_path, {**TINY, "warm_jobs": False})
    snakemake(tmp_path)
    fit_log = "results/logs/fit/demo/pc/brick.log"
    assert "in a warm fork of process" in (finished_run / fit_log).read_text()
    assert "in a warm fork" not in (tmp_path / fit_log).read_text()
    outputs = ["results/summary/metrics.csv"] + [
        f"results/demo/scores/pc/{cat}/test/scores.parquet" for cat in ("brick", "gravel")
    ]
    for name in outputs:
        assert (tmp_path / name).read_bytes() == (finished_run / name).read_bytes(), name


@pytest.mark.e2e
def test_rerun_after_complete_run_schedules_nothing(finished_run):
    assert planned_rules(finished_run) == {}


@pytest.mark.e2e
def test_changing_a_patchcore_parameter_reruns_only_that_method(finished_run):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["methods"]["pc"]["coreset"] = 0.5
    write_config(finished_run, config)
    try:
        plan = planned_rules(finished_run)
    finally:
        write_config(finished_run, TINY)
    assert plan.get("fit") == 2 and plan.get("score") == 2 and plan.get("metrics") == 2
    assert plan.get("micro") == 1 and plan.get("summary") == 1
    assert "extract" not in plan and "manifest" not in plan and "demo_dataset" not in plan


@pytest.mark.e2e
def test_second_method_on_the_same_backbone_reuses_cached_features(finished_run):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["methods"]["pc_full"] = {"kind": "patchcore", "backbone": "lite0", "coreset": 1.0}
    write_config(finished_run, config)
    try:
        plan = planned_rules(finished_run)
        assert plan.get("fit") == 2 and "extract" not in plan
        assert plan.get("micro") == 1  # pc's pooled rows stay cached
        snakemake(finished_run)
        summary = pd.read_csv(finished_run / "results/summary/metrics.csv")
        assert set(summary["method"]) == {"pc", "pc_full"}
    finally:
        write_config(finished_run, TINY)


def write_tiny_tree(root: Path, categories: tuple[str, ...]) -> None:
    """A miniature MVTec-layout tree of random 48 px images with square defects."""
    rng = np.random.default_rng(1)
    for cat in categories:
        base = root / cat
        for i in range(4):
            write_png(
                base / "train/good" / f"{i:03d}.png", rng.integers(0, 255, (48, 48, 3), np.uint8)
            )
        for i in range(2):
            write_png(
                base / "test/good" / f"{i:03d}.png", rng.integers(0, 255, (48, 48, 3), np.uint8)
            )
            img = rng.integers(0, 255, (48, 48, 3), np.uint8)
            img[10:20, 10:20] = 255
            write_png(base / "test/blob" / f"{i:03d}.png", img)
            mask = np.zeros((48, 48), np.uint8)
            mask[10:20, 10:20] = 255
            write_png(base / "ground_truth/blob" / f"{i:03d}_mask.png", mask)


@pytest.mark.e2e
def test_discovered_categories_and_the_cross_domain_grid(tmp_path):
    write_tiny_tree(tmp_path / "data", ("alpha", "beta"))
    config = {
        "datasets": {"tiny": {"root": "data", "categories": "all", "resize": 48, "crop": 48}},
        "backbones": TINY["backbones"],
        "methods": {"pc": {"kind": "patchcore", "backbone": "lite0", "coreset": 0.5}},
        "cross_domain": [{"method": "pc", "dataset": "tiny"}],
    }
    write_config(tmp_path, config)
    snakemake(tmp_path)
    summary = pd.read_csv(tmp_path / "results/summary/metrics.csv")
    assert set(summary["category"]) == {"alpha", "beta", "macro_mean", "micro"}
    cross = pd.read_csv(tmp_path / "results/summary/cross_domain.csv")
    assert len(cross) == 4
    assert set(zip(cross["train_category"], cross["test_category"])) == {
        ("alpha", "alpha"), ("alpha", "beta"), ("beta", "alpha"), ("beta", "beta")
    }  # fmt: skip
    same = cross[cross["in_domain"]]
    per_cat = summary[summary["average"] == "per_category"].set_index("category")
    for row in same.itertuples():
        assert row.image_auroc == pytest.approx(per_cat.loc[row.test_category, "image_auroc"])
        assert row.mmd == pytest.approx(0.0, abs=1e-6)
    assert (cross.loc[~cross["in_domain"], "mmd"] > 0).all()
    assert planned_rules(tmp_path) == {}


@pytest.mark.e2e
def test_invalid_config_fails_at_start_up_with_the_schema_error(tmp_path):
    bad = yaml.safe_load(yaml.safe_dump(TINY))
    bad["methods"]["pc"]["coreset"] = -0.1
    write_config(tmp_path, bad)
    cmd = snakemake_cmd(tmp_path, "-n", "--cores", "1")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "coreset" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()
