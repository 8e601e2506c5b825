"""The tiny demo through profiles/slurm on a real single-node Slurm gives the local summary."""

from __future__ import annotations

import re
import subprocess

import pandas as pd
import pytest
import slurm_node
import yaml
from test_workflow import TINY, snakemake_cmd, write_config

GPU_RULES = {"extract", "fit", "score"}
# One category and only the summary table: 8 Slurm jobs, one after the other, and each costs
# its Snakefile parse plus at least one status poll.
CONFIG = {**TINY, "datasets": {"demo": {**TINY["datasets"]["demo"], "categories": ["brick"]}}}
TARGET = "results/summary/metrics.csv"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A Slurm node for this module's tests, stopped (daemons and config gone) afterwards."""
    reason = slurm_node.missing()
    if reason:
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm-state")
    try:
        slurm_node.start(state)
        yield state
    finally:
        slurm_node.stop(state)


def submitted_rules() -> list[tuple[str, str, str]]:
    """(rule, partition, GPU request) of every job the node still remembers (MinJobAge)."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-O", "Comment:|,Partition:|,tres-per-job:|"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    jobs = []
    for line in out.splitlines():
        comment, partition, gpus = line.rstrip("|").split("|")
        rule = comment.removeprefix("rule_").split("_wildcards_")[0]
        jobs.append((rule, partition, gpus))
    return jobs


def test_every_gpu_rule_is_sent_to_the_gpu_partition():
    profile = yaml.safe_load((slurm_node.REPO / "profiles/slurm/config.yaml").read_text())
    text = "\n".join(p.read_text() for p in sorted((slurm_node.REPO / "rules").glob("*.smk")))
    blocks = re.split(r"^(?:rule|checkpoint) (\w+):", text, flags=re.MULTILINE)[1:]
    gpu_rules = {name for name, body in zip(blocks[::2], blocks[1::2]) if "gpu=" in body}
    assert GPU_RULES <= gpu_rules
    # The submitting node may have no GPU: `auto` would then make GPU rules request gpu=0.
    assert profile["config"]["gpu_jobs"] == "always"
    for rule in gpu_rules:
        assert profile["set-resources"].get(rule, {}).get("slurm_partition") == "gpu", rule


@pytest.mark.e2e
def test_slurm_profile_reproduces_the_local_summary(slurm, tmp_path):
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    for workdir in (local, cluster):
        workdir.mkdir()
        write_config(workdir, CONFIG)
    profile = slurm_node.node_profile(tmp_path / "profile")

    # The local reference runs while Slurm jobs wait for their status polls.
    # (The target follows a one-value option: --resources would swallow it.)
    local_cmd = snakemake_cmd(local, "--resources", "gpu=1", "--cores", "2", TARGET)
    with subprocess.Popen(
        local_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as local_run:
        try:
            cluster_run = subprocess.run(
                snakemake_cmd(cluster, "--profile", str(profile), TARGET),
                capture_output=True,
                text=True,
                timeout=600,
            )
            local_out = local_run.communicate(timeout=600)[0]
        finally:
            local_run.kill()  # only does something if the Slurm run raised
    assert local_run.returncode == 0, local_out[-3000:]
    assert cluster_run.returncode == 0, cluster_run.stdout[-3000:] + cluster_run.stderr[-3000:]

    jobs = submitted_rules()
    assert GPU_RULES | {"metrics", "summary"} <= {rule for rule, _, _ in jobs}
    for rule, partition, gpus in jobs:
        expected = ("gpu", "gres:gpu:1") if rule in GPU_RULES else ("cpu", "N/A")
        assert (partition, gpus) == expected, rule

    pd.testing.assert_frame_equal(pd.read_csv(cluster / TARGET), pd.read_csv(local / TARGET))
