"""Locally, `--resources gpu=1` keeps GPU-tagged jobs from ever running at the same time."""

from __future__ import annotations

import subprocess

import pytest
from test_workflow import TINY, snakemake_cmd, write_config

from iadbench.logs import step_interval

GPU_RULES = ("extract", "fit", "score")


@pytest.mark.e2e
def test_gpu_jobs_never_overlap_with_a_budget_of_one_gpu(tmp_path):
    write_config(tmp_path, TINY)
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
