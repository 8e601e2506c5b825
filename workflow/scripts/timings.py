"""Snakemake entry: results/summary/timings.csv (every job's benchmark: seconds, peak RSS)."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline.timings import collect_timings

    collect_timings(sm.params.root, sm.output[0], patterns=sm.params.patterns, logs=sm.params.logs)


entry(main, snakemake)  # noqa: F821
