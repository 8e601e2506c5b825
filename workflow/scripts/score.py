"""Snakemake entry: score one (category, split) with a method and the model it reads."""

from iadbench.logs import logged
from iadbench.pipeline import score_method

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    score_method(
        sm.params.method,
        sm.params.backbone,
        sm.params.geometry,
        dict(sm.input.items()),
        sm.wildcards.category,
        sm.wildcards.split,
        sm.output.scores,
        sm.output.maps,
        device=sm.params.device,
        view_options=sm.params.view_options,
    )
