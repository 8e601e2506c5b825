"""Snakemake entry: one table of in-domain and cross-domain results with domain distances."""

from iadbench.logs import logged
from iadbench.pipeline import cross_summary

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    cross_summary(sm.params.cells, sm.input.metrics, sm.input.distances, sm.output[0])
