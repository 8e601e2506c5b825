"""Snakemake entry: per-image latency of one method on one category (opt-in step)."""

from iadbench.logs import logged
from iadbench.pipeline import time_method

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    time_method(
        sm.params.method,
        sm.params.backbone,
        sm.params.geometry,
        sm.input.manifest,
        sm.wildcards.category,
        sm.input.get("state"),
        sm.params.images,
        sm.output[0],
        device=sm.params.device,
    )
