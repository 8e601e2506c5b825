"""Snakemake entry: results/summary/latency.csv (mean and p95 ms per method and category)."""

from iadbench.logs import logged
from iadbench.pipeline import summarise_latency

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    summarise_latency(sm.params.cells, sm.output[0])
