"""Snakemake entry: every cascade's (t_low, t_high) sweep on val, in one CSV."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import collect_sweeps

    collect_sweeps(sm.params.cells, list(sm.input), sm.output[0])


entry(main, snakemake)  # noqa: F821
