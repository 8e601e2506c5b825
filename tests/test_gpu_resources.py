"""Locally, `--resources gpu=1` keeps GPU-tagged jobs from ever running at the same time; the
`gpu_jobs` setting decides whether they ask for the GPU at all (gpu=1) or not (gpu=0)."""

from __future__ import annotations

import re
import subprocess

import pytest
from test_workflow import TINY, snakemake_cmd, write_config

from iadbench.config import nvidia_present
from iadbench.logs import step_interval

GPU_RULES = ("extract", "fit", "score")


@pytest.mark.e2e
def test_gpu_jobs_never_overlap_with_a_budget_of_one_gpu(tmp_path):
    # always: on a machine without a GPU, `auto` would make them request gpu=0 (no limit).
    write_config(tmp_path, {**TINY, "gpu_jobs": "always"})
    # One thread per GPU job, so two cores would fit two of them: only the gpu budget stops it.
    # Non-GPU jobs (metrics) may still run beside them; that is allowed, not asserted.
    cmd = snakemake_cmd(
        tmp_path,
        *("--cores", "2", "--resources", "gpu=1"),
        *("--set-threads", *(f"{rule}=1" for rule in GPU_RULES)),
    )
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    logs = [p for rule in GPU_RULES for p in (tmp_path / "results/logs" / rule).rglob("*.log")]
    assert len(logs) == 4 + 2 + 2  # (2 categories x 2 splits) extract, 2 fit, 2 score
    intervals = sorted(step_interval(p) for p in logs)
    for (_, end), (start, _) in zip(intervals, intervals[1:]):
        assert end <= start, f"GPU jobs overlap: {intervals}"


def planned_gpu(tmp_path, config: dict) -> tuple[dict[str, set[int]], str]:
    """Rule -> the set of ``gpu`` values its planned jobs request (dry run), and the log."""
    write_config(tmp_path, config)
    cmd = snakemake_cmd(tmp_path, "-n", "--cores", "2", "--resources", "gpu=1")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    requests: dict[str, set[int]] = {}
    for block in re.split(r"^(?:localrule|rule|checkpoint) ", out, flags=re.MULTILINE)[1:]:
        rule = block.split(":", 1)[0]
        resources = re.search(r"^\s+resources: (.*)$", block, re.MULTILINE)
        gpu = re.search(r"\bgpu=(\d+)", resources.group(1)) if resources else None
        requests.setdefault(rule, set()).add(int(gpu.group(1)) if gpu else None)
    return requests, out


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"gpu_jobs": "never"}, 0),
        ({"gpu_jobs": "always"}, 1),
        ({"gpu_jobs": "auto", "device": "cpu"}, 0),
        ({}, 1 if nvidia_present() else 0),  # auto on this machine
    ],
)
def test_gpu_jobs_decides_the_gpu_request_of_gpu_tagged_rules(tmp_path, settings, expected):
    requests, out = planned_gpu(tmp_path, {**TINY, **settings})
    for rule in GPU_RULES:
        assert requests[rule] == {expected}, (rule, requests)
    for rule in ("manifest", "metrics", "summary"):
        assert requests[rule] == {None}, (rule, requests)  # never tagged
    assert len(re.findall(rf"^GPU-tagged jobs request gpu={expected} \(", out, re.M)) == 1
