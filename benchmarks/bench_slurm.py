"""Wall time of the tiny demo run locally and through Slurm, and Slurm's overhead per job.

python benchmarks/bench_slurm.py   # as root, with Debian's slurmctld slurmd slurm-client munge

Starts a throwaway single-node Slurm with tests/cluster/slurm_node.py, runs the tiny demo of
tests/test_workflow.py once with `--cores 2 --resources gpu=1` and once through profiles/slurm
(as the cluster test adapts it), and prints numbers (never asserts).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "cluster")]

from slurm_node import missing, node_profile  # noqa: E402
from test_workflow import TINY, snakemake_cmd, write_config  # noqa: E402

NODE = [sys.executable, str(REPO / "tests" / "cluster" / "slurm_node.py")]


def timed_run(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return wall, proc.stdout + proc.stderr


def allocation_seconds() -> list[float]:
    """Start to end of every finished job the node remembers (Slurm's 1 s resolution)."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "CD", "-O", "StartTime:|,EndTime:|"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    spans = [line.rstrip("|").split("|") for line in out.splitlines()]
    return [
        (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
        for start, end in spans
    ]


def main() -> None:
    reason = missing()
    if reason:
        sys.exit(reason)
    work = Path(tempfile.mkdtemp(prefix="iadbench-bench-slurm-"))
    local, cluster, state = work / "local", work / "cluster", work / "slurm-state"
    for workdir in (local, cluster):
        workdir.mkdir()
        write_config(workdir, TINY)

    local_wall, _ = timed_run(snakemake_cmd(local, "--cores", "2", "--resources", "gpu=1"))
    start = time.perf_counter()
    subprocess.run([*NODE, "start", str(state)], check=True, capture_output=True)
    startup = time.perf_counter() - start
    try:
        profile = node_profile(work / "profile")
        slurm_wall, out = timed_run(snakemake_cmd(cluster, "--profile", str(profile)))
        inside = allocation_seconds()
    finally:
        subprocess.run([*NODE, "stop", str(state)], check=True)
    jobs = out.count("submitted with SLURM jobid")
    shutil.rmtree(work)

    rows = [
        ("Slurm node start-up", f"{startup:.1f} s"),
        ("tiny demo, local --cores 2", f"{local_wall:.1f} s"),
        ("tiny demo, profiles/slurm", f"{slurm_wall:.1f} s ({jobs} Slurm jobs)"),
        ("Slurm overhead per job", f"{(slurm_wall - local_wall) / jobs:.1f} s"),
        ("mean time in an allocation", f"{sum(inside) / len(inside):.1f} s per job"),
    ]
    for label, value in rows:
        print(f"{label + ':':30s} {value}")


if __name__ == "__main__":
    main()
