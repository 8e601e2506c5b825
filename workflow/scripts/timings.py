"""Snakemake entry: results/summary/timings.csv (every job's benchmark: seconds, peak RSS)."""

from iadbench.logs import logged
from iadbench.pipeline.timings import collect_timings

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    collect_timings(sm.params.root, sm.output[0], patterns=sm.params.patterns)
