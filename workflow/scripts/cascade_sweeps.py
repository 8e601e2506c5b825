"""Snakemake entry: every cascade's (t_low, t_high) sweep on val, in one CSV."""

from iadbench.logs import logged
from iadbench.pipeline import collect_sweeps

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    collect_sweeps(sm.params.cells, list(sm.input), sm.output[0])
