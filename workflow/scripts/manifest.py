"""Snakemake entry: read a dataset layout into results/{dataset}/manifest.parquet."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import make_manifest

    sources = {k[len("source_") :]: v for k, v in sm.input.items() if k.startswith("source_")}
    make_manifest(sm.wildcards.dataset, sm.params.dataset_cfg, sm.output[0], sources)


entry(main, snakemake)  # noqa: F821
