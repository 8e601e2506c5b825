"""Snakemake entry: one method's micro rows on one dataset (every category's test split pooled)."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import compute_micro

    compute_micro(
        sm.input.metrics,
        sm.input.scores,
        sm.input.maps,
        sm.input.manifest,
        sm.params.geometry,
        sm.output[0],
        fpr_limit=sm.params.fpr_limit,
        grid=sm.params.grid,
    )


entry(main, snakemake)  # noqa: F821
