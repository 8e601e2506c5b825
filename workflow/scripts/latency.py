"""Snakemake entry: per-image latency of one method on one category (opt-in step)."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import time_method

    time_method(
        sm.params.method_cfg,
        sm.params.backbone_cfg,
        sm.params.geometry,
        sm.input.manifest,
        sm.wildcards.category,
        sm.input.get("state"),
        sm.params.images,
        sm.output[0],
        device=sm.params.device,
    )


entry(main, snakemake)  # noqa: F821
