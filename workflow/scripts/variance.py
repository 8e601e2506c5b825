"""Snakemake entry: per-image std over prompt samples of one result, as a CSV and a histogram."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import variance_analysis

    variance_analysis(sm.input[0], sm.output.csv, sm.output.png, sm.params.title)


entry(main, snakemake)  # noqa: F821
