"""Time by stage: ``timings.csv`` (every job's benchmark file) per rule and per method.

Timings come from Snakemake's ``benchmark:`` files and the jobs' logs' ``usage`` lines
(:mod:`iadbench.pipeline.timings`), never from ``metrics.csv``. Jobs without a ``{method}``
wildcard (manifest, features, summaries) are counted as "shared".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from iadbench.errors import CacheError

from .figures import new_figure, to_png
from .html import Page, paragraph, table

REQUIRED = ("rule", "wildcards", "method", "seconds", "max_rss_mb", "cpu_time")
SHARED = "shared"
MAX_METHODS = 8  # methods drawn on their own; the rest are summed as "other methods"
NOTE = (
    "Wall time of every job from the benchmark files Snakemake writes "
    "(results/benchmarks/<rule>/<wildcards>.tsv), collected in results/summary/timings.csv "
    "before this report is built: the job's whole process, start-up included (interpreter and "
    "imports; with warm_jobs, the job process's wait for a fork of the server that imported "
    "once). CPU time and peak resident memory come from the usage line of the job's log, "
    "measured where the work ran (a warm fork's peak includes the pages it shares with the "
    "server), else from the benchmark file. Every benchmark file present is listed, so jobs of "
    "earlier runs whose results were reused count with their old numbers, and this report's own "
    "job is not in it. Peak RSS is the largest of the rule's jobs, not a sum. Jobs without a "
    "method (data, features, summaries) are shown as 'shared'."
)


def load_timings(path: str | Path) -> pd.DataFrame:
    """Read ``timings.csv``; an empty file gives an empty frame."""
    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=list(REQUIRED))
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise CacheError(f"{path}: timings table lacks columns {missing}")
    return frame


def with_method_label(timings: pd.DataFrame) -> pd.DataFrame:
    """``label``: the job's method, or "shared" for jobs without one."""
    method = timings["method"].astype(object)
    return timings.assign(label=method.where(method.notna(), SHARED).astype(str))


def per_rule(timings: pd.DataFrame) -> pd.DataFrame:
    """Per rule: jobs, total/mean/max seconds, peak RSS (MB), total CPU seconds; slowest first."""
    grouped = timings.groupby("rule", sort=True)
    frame = grouped.agg(
        jobs=("seconds", "size"),
        seconds=("seconds", "sum"),
        mean_s=("seconds", "mean"),
        max_s=("seconds", "max"),
        max_rss_mb=("max_rss_mb", "max"),
        cpu_time=("cpu_time", "sum"),
    ).reset_index()
    return frame.sort_values(["seconds", "rule"], ascending=[False, True], ignore_index=True)


def _fmt(value: object, digits: int = 1) -> str:
    if value is None or pd.isna(value):
        return "n/a"
    return f"{float(value):,.{digits}f}"


def rule_table(timings: pd.DataFrame) -> str:
    frame = per_rule(timings)
    cells = pd.DataFrame(
        {
            "rule": frame["rule"],
            "jobs": frame["jobs"].astype(int).astype(str),
            "total s": [_fmt(v) for v in frame["seconds"]],
            "mean s": [_fmt(v) for v in frame["mean_s"]],
            "max s": [_fmt(v) for v in frame["max_s"]],
            "peak RSS MB": [_fmt(v, 0) for v in frame["max_rss_mb"]],
            "CPU s": [_fmt(v) for v in frame["cpu_time"]],
        }
    )
    total = timings["seconds"].sum()
    caption = f"Time by rule: {len(timings)} jobs, {_fmt(total)} job-seconds in all"
    numeric = ["jobs", "total s", "mean s", "max s", "peak RSS MB", "CPU s"]
    return table(cells, caption, numeric=numeric)


def seconds_by_rule_and_method(timings: pd.DataFrame, cap: int = MAX_METHODS) -> pd.DataFrame:
    """Seconds summed per (rule, method label): rules as rows (slowest first), labels as columns.

    "shared" comes first; beyond ``cap`` methods, the others are summed as "other methods".
    """
    labelled = with_method_label(timings)
    wide = labelled.pivot_table(
        index="rule", columns="label", values="seconds", aggfunc="sum", fill_value=0.0
    )
    methods = [c for c in wide.columns if c != SHARED]
    ranked = sorted(methods, key=lambda m: (-wide[m].sum(), m))
    keep, rest = ranked[:cap], ranked[cap:]
    columns = ([SHARED] if SHARED in wide.columns else []) + keep
    out = wide[columns].copy()
    if rest:
        out["other methods"] = wide[rest].sum(axis=1)
    order = out.sum(axis=1).sort_values(ascending=False, kind="stable").index
    return out.loc[order]


def time_figure(timings: pd.DataFrame) -> Figure | None:
    """Horizontal bars: seconds per rule, stacked by method ("shared" for jobs without one)."""
    if timings.empty or not np.isfinite(timings["seconds"]).any():
        return None
    wide = seconds_by_rule_and_method(timings)
    rules = list(wide.index)[::-1]  # slowest at the top
    fig = new_figure(7.5, 1.2 + 0.32 * len(rules))
    ax = fig.subplots()
    left = np.zeros(len(rules))
    for label in wide.columns:
        values = wide.loc[rules, label].to_numpy(float)
        ax.barh(rules, values, left=left, label=str(label))
        left += values
    ax.set_xlim(0, 1.05 * left.max() if left.max() > 0 else 1.0)
    ax.set_xlabel("seconds (sum over the rule's jobs)")
    ax.set_title("time by stage and method", fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def add_timings_section(page: Page, timings: pd.DataFrame) -> None:
    """The "Time by stage" section: the note, the per-rule table and the stacked bar chart."""
    sec = page.section("Time by stage")
    sec.add(paragraph(NOTE))
    if timings.empty:
        sec.add(paragraph("timings.csv holds no rows: no benchmark files were found.", note=True))
        return
    sec.add(rule_table(timings))
    fig = time_figure(timings)
    if fig is not None:
        caption = "Seconds per rule, summed over its jobs and split by method ('shared': none)"
        sec.add(page.image("time by stage", to_png(fig), caption))
