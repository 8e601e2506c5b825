"""Snakemake entry: one table of in-domain and cross-domain results with domain distances."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import cross_summary

    cross_summary(sm.params.cells, sm.input.metrics, sm.input.distances, sm.output[0])


entry(main, snakemake)  # noqa: F821
