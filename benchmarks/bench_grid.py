"""A method grid on the demo: our one DAG (shared features) against anomalib run once per cell.

Printed, never asserted. The grid is PatchCore (greedy coreset), three other PatchCore banks (full,
random, k-means) and PaDiM on the demo's categories (all three by default) at 256 px without crop,
with EfficientNet-Lite0 ImageNet weights. Ours: one ``snakemake --cores N`` run of that grid in a
fresh folder up to ``metrics.csv`` (manifest, features once per category and split, five fits and
scores per category, metrics, pooled micro rows, summary); the demo images are generated before,
untimed, as anomalib's cells also start from the files. anomalib: every cell in a fresh process
(interpreter, imports, features, fit, score), as a per-cell harness runs it, measured by
``compare_anomalib.py --libraries anomalib`` in the comparison venv; anomalib has one PatchCore
bank, so each of the four PatchCore cells costs one PatchCore process.

Our run uses warm job processes (``warm_jobs: true``, as ``make run`` and the published figures
in docs/performance.md) unless ``--no-warm-jobs``; the setting is written into the run's
config.yaml and printed with every result line.

    .venv/bin/python benchmarks/bench_grid.py --anomalib-python .venv-compare/bin/python
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from iadbench.pipeline.timings import collect_timings

REPO = Path(__file__).resolve().parents[1]
PATCHCORE_CELLS = ("greedy", "full", "random", "kmeans")
THREADED_RULES = ("extract", "fit", "score")  # the rules that ask for 2 threads


def grid_config(size: int, categories: list[str], warm_jobs: bool = True) -> dict:
    return {
        "warm_jobs": warm_jobs,
        "datasets": {
            "demo": {
                "layout": "mvtec",
                "root": "resources/datasets/demo",
                "categories": categories,
                "demo": {"seed": 0},
                "resize": size,
                "crop": size,
            }
        },
        "backbones": {"lite0": {"model": "efficientnet_lite0", "weights": "pretrained"}},
        "methods": {
            **{
                f"patchcore_{bank}": {"kind": "patchcore", "backbone": "lite0", "bank": bank}
                for bank in PATCHCORE_CELLS
            },
            "padim": {"kind": "padim", "backbone": "lite0"},
        },
    }


def run_ours(
    cores: int,
    size: int,
    categories: list[str],
    threads: int | None = None,
    warm_jobs: bool = True,
) -> float:
    work = Path(tempfile.mkdtemp(prefix="bench-grid-"))
    (work / "config.yaml").write_text(yaml.safe_dump(grid_config(size, categories, warm_jobs)))
    options = [
        "-s", str(REPO / "Snakefile"), "--directory", str(work), "--configfile",
        str(work / "config.yaml"), "--cores", str(cores), "--resources", "gpu=1",
    ]  # fmt: skip
    if threads:  # small jobs side by side instead of each taking every core
        options += ["--set-threads", *(f"{rule}={threads}" for rule in THREADED_RULES)]
    snakemake = [sys.executable, "-m", "snakemake"]
    # The demo images are written first and not timed: anomalib's cells also start from files.
    demo = "resources/datasets/demo/.complete"
    subprocess.run([*snakemake, demo, *options], check=True, capture_output=True)
    start = time.perf_counter()
    subprocess.run(
        [*snakemake, "results/summary/metrics.csv", *options], check=True, capture_output=True
    )
    seconds = time.perf_counter() - start
    summary = pd.read_csv(work / "results/summary/metrics.csv")
    macro = summary[summary["category"] == "macro_mean"][["method", "image_auroc", "aupro"]]
    print(macro.to_string(index=False))
    print_job_seconds(work)
    return seconds


def print_job_seconds(work: Path) -> None:
    """Jobs, wall and CPU seconds per rule (``timings.csv``'s reading of benchmarks and logs)."""
    table = collect_timings(work / "results/benchmarks", logs=work / "results/logs")
    if table.empty:
        return
    by_rule = table.groupby("rule").agg(
        jobs=("seconds", "size"), wall_s=("seconds", "sum"), cpu_s=("cpu_time", "sum")
    )
    print(f"work folder {work}; job seconds by rule:")
    print(by_rule.round(1).to_string())


def run_anomalib(python: str, size: int, categories: list[str], max_rss_gb: float) -> float:
    out = Path(tempfile.mkdtemp(prefix="bench-grid-anomalib-"))
    cmd = [
        python, str(REPO / "benchmarks/compare_anomalib.py"), "--libraries", "anomalib",
        "--size", str(size), "--out", str(out), "--name", "grid", "--categories", *categories,
        "--max-rss-gb", str(max_rss_gb),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    table = pd.read_csv(next(out.glob("compare_anomalib_grid_*[0-9].csv")))
    cells = table[table["category"] != "mean"].set_index(["category", "method"])["process_s"]
    per_category = {
        c: len(PATCHCORE_CELLS) * cells[(c, "patchcore")] + cells[(c, "padim")]
        for c in cells.index.get_level_values(0).unique()
    }
    print("anomalib process seconds per cell:", cells.round(1).to_dict())
    return float(sum(per_category.values()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--anomalib-python", help="python of the venv with the compare extra")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--categories", nargs="+", default=["brick", "grass", "gravel"])
    parser.add_argument(
        "--threads-per-job", type=int, help="--set-threads for extract, fit and score jobs"
    )
    parser.add_argument(
        "--anomalib-max-rss-gb",
        type=float,
        default=16.0,
        help="memory guard of each anomalib cell (its coreset sometimes needs more than 8 GB)",
    )
    parser.add_argument(
        "--warm-jobs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="our jobs in forks of one warm process (config warm_jobs; default: on, as make run)",
    )
    args = parser.parse_args(argv)
    warm = f"warm jobs {'on' if args.warm_jobs else 'off'}"
    print(f"load before {os.getloadavg()}; ours with {warm}", flush=True)
    ours = run_ours(args.cores, args.size, args.categories, args.threads_per_job, args.warm_jobs)
    n = len(args.categories)
    print(f"ours: one DAG, 5 methods x {n} categories, {warm}: {ours:.1f} s", flush=True)
    if args.anomalib_python:
        theirs = run_anomalib(
            args.anomalib_python, args.size, args.categories, args.anomalib_max_rss_gb
        )
        print(f"anomalib: once per cell (4 PatchCore + 1 PaDiM per category): {theirs:.1f} s")
        print(f"ratio anomalib / ours ({warm}): {theirs / ours:.2f}x; load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
