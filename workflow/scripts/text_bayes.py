"""Snakemake entry: R noisy prototype pairs of a prompt set for one class name (Bayes path)."""

from iadbench.logs import logged
from iadbench.pipeline import make_noisy_text

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    make_noisy_text(
        sm.params.encoder,
        sm.params.prompts,
        sm.params.class_name,
        int(sm.wildcards.samples),
        float(sm.wildcards.sigma),
        int(sm.wildcards.seed),
        sm.output[0],
        device=sm.params.device,
    )
