"""Snakemake entry: per-image std over prompt samples of one result, as a CSV and a histogram."""

from iadbench.logs import logged
from iadbench.pipeline import variance_analysis

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    variance_analysis(sm.input[0], sm.output.csv, sm.output.png, sm.params.title)
