"""Speed numbers, printed (never asserted): feature extraction, coreset, end-to-end demo.

python benchmarks/bench_pipeline.py [--bank 50000] [--skip-e2e]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from iadbench.backbones.loader import load_backbone
from iadbench.features.patches import locally_aware_patches
from iadbench.methods.coreset import approximate_greedy_coreset

REPO = Path(__file__).resolve().parents[1]


def bench_extraction(n_images: int = 64, batch: int = 16) -> float:
    backbone = load_backbone("efficientnet_lite0", "pretrained")
    images = torch.randn(batch, 3, 224, 224)
    locally_aware_patches(backbone.taps(images))  # warm-up
    start = time.perf_counter()
    for _ in range(n_images // batch):
        locally_aware_patches(backbone.taps(images))
    return n_images / (time.perf_counter() - start)


def bench_coreset(bank: int, dim: int = 152, fraction: float = 0.01) -> float:
    feats = np.random.default_rng(0).normal(size=(bank, dim)).astype(np.float32)
    start = time.perf_counter()
    approximate_greedy_coreset(feats, max(1, int(bank * fraction)), progress=False)
    return time.perf_counter() - start


def bench_demo() -> tuple[float, float]:
    work = Path(tempfile.mkdtemp(prefix="iadbench-bench-"))
    shutil.copy(REPO / "config" / "config.yaml", work / "config.yaml")
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(work),
        "--configfile",
        str(work / "config.yaml"),
        "--cores",
        "2",
        "--resources",
        "gpu=1",
        "--quiet",
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    full = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    noop = time.perf_counter() - start
    shutil.rmtree(work)
    return full, noop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bank", type=int, default=50_000, help="patches in the coreset input")
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"feature extraction (Lite0, 224 px, CPU): {bench_extraction():.1f} images/s")
    print(f"coreset 1% of {args.bank} x 152: {bench_coreset(args.bank):.2f} s")
    if not args.skip_e2e:
        full, noop = bench_demo()
        print(f"demo end-to-end (--cores 2): {full:.1f} s; no-op rerun: {noop:.1f} s")


if __name__ == "__main__":
    main()
