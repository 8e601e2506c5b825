"""Snakemake entry: results/summary/latency.csv (mean and p95 ms per method and category)."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import summarise_latency

    summarise_latency(sm.params.cells, sm.output[0])


entry(main, snakemake)  # noqa: F821
