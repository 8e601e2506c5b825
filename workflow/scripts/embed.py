"""Snakemake entry: one frozen encoder over one (dataset, category, split) of a weld manifest."""

from iadbench.logs import logged
from iadbench.pipeline.embeddings import embed

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    embed(
        sm.input.manifest,
        sm.params.dataset,
        sm.wildcards.encoder,
        sm.params.encoder,
        sm.params.backbones,
        sm.wildcards.category,
        sm.wildcards.split,
        sm.output.npy,
        sm.output.index,
        device=sm.params.device,
    )
