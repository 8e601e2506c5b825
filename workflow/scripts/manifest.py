"""Snakemake entry: read a dataset layout into results/{dataset}/manifest.parquet."""

from iadbench.logs import logged
from iadbench.pipeline import make_manifest

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    sources = {k[len("source_") :]: v for k, v in sm.input.items() if k.startswith("source_")}
    make_manifest(sm.wildcards.dataset, sm.params.dataset, sm.output[0], sources)
