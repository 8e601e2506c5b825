"""DAG-build time (`snakemake -n`), printed (never asserted), for the default config and a
generated many-category, many-cell, many-seed config; also whether heavy packages are imported
meanwhile, and (``--noop``) the no-op rerun of a finished demo run.

python benchmarks/bench_dryrun.py [--repo PATH] [--categories 15] [--cells 10] [--seeds 3]
                                  [--no-val] [--repeat 3] [--noop] [--profile OUT.prof]

The generated config has one dataset of ``--categories`` tiny categories, ``--cells`` method
cells (PatchCore coreset and PaDiM n_features grids), each with ``--seeds`` seeds, and a
``val_split`` (so every result is scored and measured on test and val) unless ``--no-val``:
15 x 10 x 3 plans about 2,300 jobs. Goals on a 2-core CPU: that dry run under 10 s, the no-op
rerun of the demo under 3 s. ``--profile`` writes a cProfile of one in-process parse and dry run
of the generated config (``python -m pstats OUT.prof``).

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


def grid_config(
    data_root: Path, categories: list[str], cells: int, seeds: int = 1, val: bool = False
) -> dict:
    """One dataset, one backbone, ``cells`` method cells (PatchCore coreset + PaDiM n_features),
    each run with ``seeds`` seeds; ``val`` adds a val split (every result scored twice)."""
    n_pc, n_padim = (cells + 1) // 2, cells // 2
    seed = {"seed": list(range(seeds))} if seeds > 1 else {}
    methods = {
        "patchcore": {
            "kind": "patchcore",
            "backbone": "lite0",
            "grid": {"coreset": [round(0.01 * (i + 1), 2) for i in range(n_pc)]},
            **seed,
        }
    }
    if n_padim:
        methods["padim"] = {
            "kind": "padim",
            "backbone": "lite0",
            "grid": {"n_features": [10 * (i + 1) for i in range(n_padim)]},
            **seed,
        }
    dataset = {"layout": "mvtec", "root": str(data_root), "categories": categories}
    if val:
        dataset["val_split"] = {"fraction": 0.5, "seed": 0}
    return {
        "datasets": {"fake": dataset},
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


def snakemake_cmd(repo: Path, workdir: Path, configfile: Path, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(configfile), *args,
    ]  # fmt: skip


def bench_noop(repo: Path, workdir: Path, repeat: int, env: dict) -> None:
    """Run the demo (default config) once in ``workdir``, then time ``--cores 2`` reruns."""
    configfile = workdir / "config.yaml"
    configfile.write_text((repo / "config/config.yaml").read_text())
    cmd = snakemake_cmd(repo, workdir, configfile, "--cores", "2", "--resources", "gpu=1")
    full, _ = run(cmd, env)
    times = []
    for _ in range(repeat):
        elapsed, proc = run(cmd, env)
        if "Nothing to be done" not in proc.stdout + proc.stderr:
            sys.exit(f"the rerun was not a no-op:\n{proc.stderr[-3000:]}")
        times.append(elapsed)
    print(
        f"{'no-op':<10} min {min(times):6.2f} s  median {statistics.median(times):6.2f} s  "
        f"(demo run before it: {full:.0f} s)"
    )


def profile_parse(repo: Path, workdir: Path, configfile: Path, out: Path, env: dict) -> None:
    """cProfile of one dry run, in a child process (Snakemake's API, not its CLI wrapper)."""
    argv = snakemake_cmd(repo, workdir, configfile, "-n", "--cores", "2", "--quiet")[3:]
    statement = f"main({argv!r})"
    code = "import cProfile; from snakemake.cli import main; "
    code += f"cProfile.run({statement!r}, {str(out)!r})"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if not out.exists():
        sys.exit(f"profiling failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    print(f"profile    {out} (python -m pstats {out}; sort cumtime; stats 30)")


def bench(name: str, repo: Path, workdir: Path, configfile: Path, repeat: int, env: dict) -> None:
    # --quiet rules: keeps the Job stats table
    cmd = snakemake_cmd(repo, workdir, configfile, "-n", "--cores", "2", "--quiet", "rules")
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
    parser.add_argument("--cells", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--no-val", dest="val", action="store_false", help="no val split")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--noop", action="store_true", help="also time the demo's no-op rerun")
    parser.add_argument("--profile", type=Path, help="cProfile of the generated config's parse")
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
        config = grid_config(tmp / "data", categories, args.cells, args.seeds, args.val)
        (grid_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

        bench("default", repo, default_dir, repo / "config/config.yaml", args.repeat, env)
        grid_name = f"{args.categories}x{args.cells}x{args.seeds}" + ("+val" if args.val else "")
        bench(grid_name, repo, grid_dir, grid_dir / "config.yaml", args.repeat, env)
        if args.profile:
            profile_parse(repo, grid_dir, grid_dir / "config.yaml", args.profile.resolve(), env)
        if args.noop:
            noop_dir = tmp / "noop"
            noop_dir.mkdir()
            bench_noop(repo, noop_dir, args.repeat, env)


if __name__ == "__main__":
    main()
