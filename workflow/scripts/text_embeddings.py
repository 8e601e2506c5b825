"""Snakemake entry: sentence embeddings of a prompt set for one class name."""

from iadbench.logs import logged
from iadbench.pipeline import make_text

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    make_text(
        sm.params.encoder,
        sm.params.prompts,
        sm.params.class_name,
        sm.output[0],
        device=sm.params.device,
    )
