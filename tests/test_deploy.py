"""The workflow as others take it: used as a Snakemake module (what snakedeploy writes), its
Snakemake report, and the workflow-catalog files (config/README.md names every config key)."""

from __future__ import annotations

import re
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
import yaml
from test_workflow import REPO, snakemake_cmd

from iadbench.smk_report import CATEGORIES

TINY = {
    "datasets": {
        "demo": {
            "layout": "mvtec",
            "root": "resources/datasets/demo",
            "categories": ["brick"],
            "demo": {"seed": 0, "image_size": 64, "n_train": 6, "n_test_good": 3,
                     "n_per_defect": 1},
            "resize": 64,
            "crop": 64,
        }
    },
    "backbones": {"lite0": {"model": "efficientnet_lite0", "weights": "pretrained"}},
    "methods": {"pc": {"kind": "patchcore", "backbone": "lite0", "coreset": 0.2}},
}  # fmt: skip
MODULE_SNAKEFILE = REPO / "tests" / "module" / "Snakefile"


def run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def workdir_with_config(factory, name: str) -> Path:
    workdir = factory.mktemp(name)
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY))
    return workdir


def module_cmd(workdir: Path, *args: str) -> list[str]:
    cmd = snakemake_cmd(workdir, *args)
    cmd[cmd.index("-s") + 1] = str(MODULE_SNAKEFILE)
    return cmd


@pytest.fixture(scope="module")
def direct_run(tmp_path_factory) -> Path:
    workdir = workdir_with_config(tmp_path_factory, "direct")
    run(snakemake_cmd(workdir, "--cores", "2", "--resources", "gpu=1"))
    return workdir


@pytest.fixture(scope="module")
def module_run(tmp_path_factory) -> Path:
    workdir = workdir_with_config(tmp_path_factory, "module")
    run(module_cmd(workdir, "--cores", "2", "--resources", "gpu=1"))
    return workdir


@pytest.mark.e2e
def test_used_as_a_module_it_gives_the_same_metrics_as_a_direct_run(direct_run, module_run):
    """Paths inside the workflow (schema, scripts, envs, references, captions) resolve relative
    to it, results and the generated demo data relative to the caller's working directory."""
    name = "results/summary/metrics.csv"
    assert (module_run / name).read_bytes() == (direct_run / name).read_bytes()
    assert (module_run / "resources/datasets/demo/.complete").exists()
    assert (module_run / "results/logs/fit/demo/pc/brick.log").exists()
    # the module's rules carry the prefix; nothing is left to do after the run
    out = run(module_cmd(module_run, "-n", "--cores", "2"))
    assert "Nothing to be done" in out
    listed = run(module_cmd(module_run, "--list-rules"))
    assert "iadbench_extract" in listed and "iadbench_report" in listed


def report_text(path: Path) -> str:
    """Every text file of a Snakemake report (.html, or .zip of a folder of files)."""
    if path.suffix == ".html":
        return path.read_text()
    with zipfile.ZipFile(path) as archive:
        return "\n".join(
            archive.read(name).decode("utf-8", "replace")
            for name in archive.namelist()
            if name.endswith((".html", ".js", ".json", ".txt"))
        )


@pytest.mark.e2e
def test_snakemake_report_files_results_by_category_with_provenance(module_run):
    zipped = module_run / "report.zip"
    run(module_cmd(module_run, "--report", str(zipped)))
    text = report_text(zipped)
    for category in ("Summary", "Per category", "Curves", "Overlays", "Timings"):
        assert category in text, category
    for item in ("metrics.csv", "timings.csv", "report.html", "bars-demo", "curves-demo-brick",
                 "overlay-demo-pc-brick", "time-by-stage"):  # fmt: skip
        assert item in text, item
    assert "an incremental benchmark of visual anomaly detection" in text  # workflow.rst
    assert "the macro" in text  # metrics.rst, the caption of metrics.csv
    assert "iadbench_fit" in text  # each result's provenance: rules (as the module names them)


@pytest.mark.e2e
def test_snakemake_report_html_with_the_metadata_landing_page(direct_run):
    html = direct_run / "report.html"
    metadata = REPO / "workflow" / "report" / "metadata.yaml"
    started = time.perf_counter()
    run(snakemake_cmd(direct_run, "--report", str(html), "--report-metadata", str(metadata)))
    seconds = time.perf_counter() - started
    text = html.read_text()
    assert all(c in text for c in ("Summary", "Curves", "Overlays", "Timings"))
    assert "Working directory" in text and str(direct_run) in text
    print(f"\nSnakemake report: {html.stat().st_size / 1e6:.2f} MB in {seconds:.1f} s")


def test_the_landing_page_links_every_report_category():
    landing = (REPO / "workflow/report/workflow.rst").read_text()
    for category in CATEGORIES:  # a link when the run has results there (RST needs a target)
        assert f'{{{{ cat("{category}") }}}}' in landing, category


def test_config_readme_names_every_top_level_key_of_the_schema():
    schema = yaml.safe_load((REPO / "config/schema.yaml").read_text())
    readme = (REPO / "config/README.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", readme, re.MULTILINE))
    assert documented == set(schema["properties"])
    for key in schema["required"]:
        assert f"| `{key}` | required |" in readme


def test_the_catalog_file_declares_usage():
    catalog = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    usage = catalog["usage"]
    assert usage["software-stack-deployment"]["conda"] is True and usage["report"] is True
    assert "--resources gpu=1" in usage["mandatory-flags"]["flags"]


def test_the_module_snakefile_names_this_workflow():
    text = MODULE_SNAKEFILE.read_text()
    assert '"../../Snakefile"' in text and "use rule * from iadbench as iadbench_*" in text
