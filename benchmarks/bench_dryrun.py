"""DAG-build time (`snakemake -n`), printed (never asserted), for the default config and a
generated many-category, many-cell config; also whether heavy packages are imported meanwhile.

python benchmarks/bench_dryrun.py [--repo PATH] [--categories 15] [--cells 8] [--repeat 3]

``--repo`` picks the checkout whose Snakefile runs (default: the one holding this script); its
``src`` is put first on PYTHONPATH, so that checkout's iadbench is imported with its Snakefile.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from PIL import Image

HEAVY = ("torch", "faiss", "open_clip")


def fake_mvtec(root: Path, n_categories: int, n_train: int = 5) -> list[str]:
    """Tiny 16x16 PNGs in the MVTec-AD layout: train/good, test/good, test/crack + masks."""
    img = Image.new("RGB", (16, 16), (128, 128, 128))
    mask = Image.new("L", (16, 16), 0)
    mask.paste(255, (4, 4, 8, 8))
    categories = [f"cat{i:02d}" for i in range(n_categories)]
    for cat in categories:
        for sub, n in (("train/good", n_train), ("test/good", 1), ("test/crack", 1)):
            (root / cat / sub).mkdir(parents=True)
            for i in range(n):
                img.save(root / cat / sub / f"{i:03d}.png")
        (root / cat / "ground_truth/crack").mkdir(parents=True)
        mask.save(root / cat / "ground_truth/crack/000_mask.png")
    return categories


def grid_config(data_root: Path, categories: list[str], cells: int) -> dict:
    """One dataset, one backbone, ``cells`` method cells (PatchCore coreset + PaDiM n_features)."""
    n_pc, n_padim = (cells + 1) // 2, cells // 2
    methods = {
        "patchcore": {
            "kind": "patchcore",
            "backbone": "lite0",
            "grid": {"coreset": [round(0.01 * (i + 1), 2) for i in range(n_pc)]},
        }
    }
    if n_padim:
        methods["padim"] = {
            "kind": "padim",
            "backbone": "lite0",
            "grid": {"n_features": [10 * (i + 1) for i in range(n_padim)]},
        }
    return {
        "datasets": {"fake": {"layout": "mvtec", "root": str(data_root), "categories": categories}},
        "backbones": {"lite0": {"model": "efficientnet_lite0", "weights": "pretrained"}},
        "methods": methods,
    }


def job_count(out: str) -> int:
    """The 'total' line of the dry run's Job stats table (0 when nothing is to be done)."""
    match = re.search(r"^total\s+(\d+)\s*$", out, re.MULTILINE)
    return int(match.group(1)) if match else 0


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return elapsed, proc


def bench(name: str, repo: Path, workdir: Path, configfile: Path, repeat: int, env: dict) -> None:
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(configfile),
        "-n", "--cores", "2", "--quiet", "rules",  # rules: keeps the Job stats table
    ]  # fmt: skip
    times, jobs = [], 0
    for _ in range(repeat):
        elapsed, proc = run(cmd, env)
        times.append(elapsed)
        jobs = job_count(proc.stdout + proc.stderr)
    _, proc = run(cmd, {**env, "PYTHONPROFILEIMPORTTIME": "1"})
    imported = {
        m: bool(re.search(rf"\|\s+{re.escape(m)}$", proc.stderr, re.MULTILINE)) for m in HEAVY
    }
    print(
        f"{name:<10} min {min(times):6.2f} s  median {statistics.median(times):6.2f} s  "
        f"jobs {jobs:5d}  imported: "
        + ", ".join(f"{m}={'yes' if v else 'no'}" for m, v in imported.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--categories", type=int, default=15)
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    repo = args.repo.resolve()

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo / "src"), env.get("PYTHONPATH")]))
    lib = subprocess.run(
        [sys.executable, "-c", "import iadbench; print(iadbench.__file__)"],
        capture_output=True, text=True, env=env,
    ).stdout.strip()  # fmt: skip
    print(f"repo {repo}\niadbench {lib}\nload {os.getloadavg()}")

    with tempfile.TemporaryDirectory(prefix="iadbench-dryrun-") as tmp:
        tmp = Path(tmp)
        default_dir, grid_dir = tmp / "default", tmp / "grid"
        default_dir.mkdir()
        grid_dir.mkdir()
        categories = fake_mvtec(tmp / "data", args.categories)
        config = grid_config(tmp / "data", categories, args.cells)
        (grid_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

        bench("default", repo, default_dir, repo / "config/config.yaml", args.repeat, env)
        grid_name = f"{args.categories}x{args.cells}"
        bench(grid_name, repo, grid_dir, grid_dir / "config.yaml", args.repeat, env)


if __name__ == "__main__":
    main()
