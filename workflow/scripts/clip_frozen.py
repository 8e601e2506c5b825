"""Snakemake entry: the frozen residual stream of one (dataset, category, split) for training."""

from iadbench.logs import logged
from iadbench.pipeline.clip import make_frozen

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    make_frozen(
        sm.input.manifest,
        sm.wildcards.category,
        sm.wildcards.split,
        sm.params.backbone,
        sm.params.geometry,
        sm.wildcards.view,
        sm.output.tokens,
        sm.output.meta,
        device=sm.params.device,
    )
