"""Where the time goes: every job's Snakemake ``benchmark:`` file in one table.

Each rule writes ``results/benchmarks/<rule>/<wildcards>.tsv`` (wall seconds ``s``, peak
resident memory ``max_rss`` in MB, ``cpu_time`` in seconds, ...). :func:`collect_timings` reads
every such file present under the benchmark folder, so the table also lists jobs of earlier
runs whose results are still cached (and jobs of rules or methods no longer in the config);
a job that did not run again keeps its old numbers. It is kept apart from ``metrics.csv``:
timings vary between runs and machines, metrics must not.

CPU seconds and peak RSS come from the job's log when it has a ``usage`` line
(:func:`iadbench.logs.step_usage`): a job run in a warm fork does its work outside the process
Snakemake measures. Peak RSS of such a job includes the pages it shares with the warm server
(torch and the library, about 0.5 GB), as a fresh process's would.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from iadbench.io import save_text
from iadbench.logs import step_usage

log = logging.getLogger(__name__)

COLUMNS = ["rule", "wildcards", "method", "seconds", "max_rss_mb", "cpu_time"]


def _pattern_regex(pattern: str) -> re.Pattern:
    """``{dataset}/{method}/{category}`` as a regex with one named group per wildcard."""
    parts = re.split(r"\{(\w+)\}", pattern)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts)
    )
    return re.compile(f"^{regex}$")


def method_of(wildcards: str, pattern: str | None) -> str | None:
    """The ``{method}`` part of a job's wildcards path, given its rule's pattern (else None)."""
    if pattern is None or "{method}" not in pattern:
        return None
    match = _pattern_regex(pattern).match(wildcards)
    return match.group("method") if match else None


def _number(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(dtype=float)
    return pd.to_numeric(frame[column], errors="coerce")


def read_benchmark(path: str | Path) -> dict[str, float]:
    """Seconds, peak RSS (MB) and CPU seconds of one benchmark file.

    A file with several rows (``benchmark: repeat(...)``) gives the mean seconds and CPU time
    and the largest peak RSS. Values Snakemake could not measure (``NA``) stay NaN.
    """
    frame = pd.read_csv(path, sep="\t")
    return {
        "seconds": _number(frame, "s").mean(),
        "max_rss_mb": _number(frame, "max_rss").max(),
        "cpu_time": _number(frame, "cpu_time").mean(),
    }


def collect_timings(
    root: str | Path,
    out_csv: str | Path | None = None,
    patterns: Mapping[str, str] | None = None,
    logs: str | Path | None = None,
) -> pd.DataFrame:
    """One row per benchmark file under ``root`` (``<rule>/<wildcards>.tsv``), sorted.

    ``patterns`` maps a rule to its wildcards pattern (e.g. ``{dataset}/{method}/{category}``)
    so the ``method`` column can be filled; it is empty for rules without ``{method}``. ``logs``
    is the log folder (``<rule>/<wildcards>.log``) whose ``usage`` lines replace the benchmark
    file's CPU time and peak RSS. Writes ``out_csv`` (atomically) when given.
    """
    root = Path(root)
    patterns = dict(patterns or {})
    records = []
    for path in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        relative = path.relative_to(root)
        if len(relative.parts) < 2:
            continue  # not <rule>/<wildcards>.tsv
        rule = relative.parts[0]
        wildcards = relative.relative_to(rule).with_suffix("").as_posix()
        record = read_benchmark(path)
        log_file = Path(logs) / rule / f"{wildcards}.log" if logs is not None else None
        usage = step_usage(log_file) if log_file is not None and log_file.is_file() else None
        if usage is not None:
            record["cpu_time"], record["max_rss_mb"] = usage
        records.append(
            {
                "rule": rule,
                "wildcards": wildcards,
                "method": method_of(wildcards, patterns.get(rule)),
                **record,
            }
        )
    frame = pd.DataFrame.from_records(records, columns=COLUMNS)
    if out_csv is not None:
        save_text(out_csv, frame.round(3).to_csv(index=False))
        log.info(
            "%d benchmark files, %.1f job-seconds in all -> %s",
            len(frame),
            frame["seconds"].sum(),
            out_csv,
        )
    return frame
