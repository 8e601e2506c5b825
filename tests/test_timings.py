"""timings.csv from hand-written benchmark files, and the report's "Time by stage" section."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report import Tables, write_summary

from iadbench.pipeline.timings import collect_timings, method_of
from iadbench.report import build_report
from iadbench.report.timings import seconds_by_rule_and_method

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
PATTERNS = {
    "fit": "{dataset}/{method}/{category}",
    "score": "{dataset}/{method}/{category}/{split}",
    "extract": "{dataset}/{backbone}/{category}/{split}",
    "demo_dataset": "{root}",
    "summary": "summary",
}


def bench(root: Path, rel: str, *rows: tuple[float, object, float]) -> None:
    """A Snakemake benchmark file with one line per (s, max_rss, cpu_time)."""
    path = root / f"{rel}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{s}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n" for s, rss, cpu in rows]
    path.write_text(HEADER + "".join(lines))


@pytest.fixture
def benchmarks(tmp_path) -> Path:
    root = tmp_path / "results/benchmarks"
    bench(root, "fit/demo/pc+coreset=0.1/brick", (12.5, 800.25, 20.0))
    bench(root, "fit/demo/padim/brick", (3.0, 400.0, 2.5))
    bench(root, "score/demo/pc+coreset=0.1/brick/test", (4.0, 600.0, 5.0))
    bench(root, "extract/demo/lite0/brick/test", (6.0, 900.0, 9.0))
    bench(root, "demo_dataset/resources/datasets/demo", (1.5, "NA", 1.0))
    bench(root, "summary/summary", (2.0, 300.0, 1.0), (4.0, 350.0, 3.0))  # repeat(): 2 rows
    (root / "stray.tsv").write_text(HEADER)  # not <rule>/<wildcards>.tsv: ignored
    return root


def test_collect_timings_reads_every_benchmark_file(benchmarks, tmp_path):
    out = tmp_path / "results/summary/timings.csv"
    frame = collect_timings(benchmarks, out, patterns=PATTERNS)
    read = pd.read_csv(out)
    assert list(read.columns) == [
        "rule",
        "wildcards",
        "method",
        "seconds",
        "max_rss_mb",
        "cpu_time",
    ]
    rows = {(r.rule, r.wildcards): r for r in read.itertuples()}
    assert len(rows) == len(frame) == 6
    fit = rows[("fit", "demo/pc+coreset=0.1/brick")]
    assert (fit.method, fit.seconds, fit.max_rss_mb, fit.cpu_time) == (
        "pc+coreset=0.1",
        12.5,
        800.25,
        20,
    )
    assert rows[("score", "demo/pc+coreset=0.1/brick/test")].method == "pc+coreset=0.1"
    assert rows[("fit", "demo/padim/brick")].method == "padim"
    assert pd.isna(rows[("extract", "demo/lite0/brick/test")].method)  # no {method}: shared
    demo = rows[("demo_dataset", "resources/datasets/demo")]
    assert demo.seconds == 1.5 and np.isnan(demo.max_rss_mb)  # NA stays missing
    summary = rows[("summary", "summary")]
    assert (summary.seconds, summary.max_rss_mb, summary.cpu_time) == (3.0, 350.0, 2.0)


def test_a_logged_usage_line_replaces_the_benchmark_cpu_and_memory(benchmarks, tmp_path):
    """A job run in a warm fork: Snakemake measured the waiting job process, the log the fork."""
    from iadbench.logs import logged

    logs = tmp_path / "results/logs"
    with logged(logs / "fit/demo/padim/brick.log"):
        sum(i * i for i in range(200_000))  # some CPU time to measure
    frame = collect_timings(benchmarks, patterns=PATTERNS, logs=logs).set_index("wildcards")
    padim = frame.loc["demo/padim/brick"]
    assert padim["seconds"] == 3.0  # wall time stays Snakemake's
    assert padim["cpu_time"] != 2.5 and padim["max_rss_mb"] != 400.0
    assert 0 < padim["cpu_time"] < 1000 and 10 < padim["max_rss_mb"] < 100_000
    other = frame.loc["demo/pc+coreset=0.1/brick"]  # no log: the benchmark's numbers
    assert (other["cpu_time"], other["max_rss_mb"]) == (20.0, 800.25)


def test_no_benchmark_folder_gives_an_empty_table(tmp_path):
    out = tmp_path / "timings.csv"
    assert collect_timings(tmp_path / "missing", out).empty
    assert out.read_text().strip() == "rule,wildcards,method,seconds,max_rss_mb,cpu_time"


def test_method_of_uses_the_rule_pattern():
    assert method_of("demo/pc/brick", "{dataset}/{method}/{category}") == "pc"
    assert (
        method_of("demo/pc/tr/te/test", "{dataset}/{method}/{train_category}/{category}/{split}")
        == "pc"
    )
    assert method_of("demo/lite0/brick/test", "{dataset}/{backbone}/{category}/{split}") is None
    assert method_of("demo/pc/brick", None) is None
    assert method_of("pc/ts", "{method}/{train_set}") == "pc"


def test_seconds_are_split_by_method_with_shared_first_and_a_cap():
    timings = pd.DataFrame(
        {
            "rule": ["fit", "fit", "fit", "extract", "score"],
            "wildcards": ["a", "b", "c", "d", "e"],
            "method": ["m1", "m2", "m3", np.nan, "m1"],
            "seconds": [5.0, 3.0, 1.0, 7.0, 2.0],
            "max_rss_mb": [1.0] * 5,
            "cpu_time": [1.0] * 5,
        }
    )
    wide = seconds_by_rule_and_method(timings, cap=2)
    assert list(wide.columns) == ["shared", "m1", "m2", "other methods"]
    assert list(wide.index) == ["fit", "extract", "score"]  # most seconds first
    assert wide.loc["fit"].tolist() == [0.0, 5.0, 3.0, 1.0]
    assert wide.loc["extract", "shared"] == 7.0 and wide.loc["score", "m1"] == 2.0


def test_report_shows_time_by_stage(benchmarks, tmp_path):
    timings = tmp_path / "timings.csv"
    collect_timings(benchmarks, timings, patterns=PATTERNS)
    summary = tmp_path / "metrics.csv"
    write_summary(summary, extra=False)
    result = build_report(summary, tmp_path / "report.html", tmp_path / "figs", timings_csv=timings)
    html = (tmp_path / "report.html").read_text()
    assert "Time by stage" in result["sections"]
    assert "time-by-stage.png" in result["figures"]
    assert (tmp_path / "figs/time-by-stage.png").read_bytes().startswith(b"\x89PNG")
    tables = Tables(html)
    assert tables.find("Time by rule")["caption"].startswith("Time by rule: 6 jobs, 30.0 ")
    by_rule = {r["rule"]: r for r in tables.records("Time by rule")}
    assert list(by_rule) == ["fit", "extract", "score", "summary", "demo_dataset"]
    assert by_rule["fit"]["jobs"] == "2" and by_rule["fit"]["total s"] == "15.5"
    assert by_rule["fit"]["peak RSS MB"] == "800" and by_rule["fit"]["CPU s"] == "22.5"
    assert by_rule["demo_dataset"]["peak RSS MB"] == "n/a"
    section = re.search(r'<section id="time-by-stage">(.*?)</section>', html, re.S).group(1)
    assert "shared" in section


def test_report_without_timings_has_no_time_section(tmp_path):
    summary = tmp_path / "metrics.csv"
    write_summary(summary, extra=False)
    result = build_report(summary, tmp_path / "report.html", tmp_path / "figs")
    assert "Time by stage" not in result["sections"]
