"""Snakemake entry: generate the embedded demo dataset."""

from iadbench.logs import logged
from iadbench.pipeline import make_demo

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    make_demo(sm.wildcards.root, sm.params.demo, sm.params.categories)
