"""Snakemake entry: score one category's test split with a fitted method."""

from iadbench.logs import logged
from iadbench.pipeline import score_method

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    score_method(
        sm.params.method,
        sm.params.backbone,
        sm.params.geometry,
        sm.input.state,
        sm.input.npy,
        sm.input.index,
        sm.output.scores,
        sm.output.maps,
        device=sm.params.device,
    )
