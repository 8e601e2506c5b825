"""Snakemake entry: fit one method on one category's training split."""

from iadbench.logs import logged
from iadbench.pipeline import fit_method

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    fit_method(
        sm.params.method,
        sm.params.backbone,
        sm.params.geometry,
        dict(sm.input.items()),
        sm.wildcards.category,
        sm.output.state,
        device=sm.params.device,
    )
