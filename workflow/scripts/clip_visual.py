"""Snakemake entry: a CLIP backbone's visual view of one (dataset, category, split)."""

from iadbench.logs import logged
from iadbench.pipeline import make_visual

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    make_visual(
        sm.input.manifest,
        sm.wildcards.category,
        sm.wildcards.split,
        sm.params.backbone,
        sm.params.geometry,
        sm.wildcards.view,
        sm.output[0],
        device=sm.params.device,
        options=sm.params.options,
    )
