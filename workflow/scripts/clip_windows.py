"""Snakemake entry: WinCLIP window embeddings of one (dataset, category, split)."""

from iadbench.logs import logged
from iadbench.pipeline import make_windows

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    make_windows(
        sm.input.manifest,
        sm.wildcards.category,
        sm.wildcards.split,
        sm.params.backbone,
        sm.params.geometry,
        sm.wildcards.sizes,
        sm.output[0],
        device=sm.params.device,
    )
