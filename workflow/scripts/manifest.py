"""Snakemake entry: read a dataset layout into results/{dataset}/manifest.parquet."""

from iadbench.logs import logged
from iadbench.pipeline import make_manifest

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    make_manifest(sm.wildcards.dataset, sm.params.dataset, sm.output[0])
