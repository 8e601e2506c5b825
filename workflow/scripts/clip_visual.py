"""Snakemake entry: a CLIP backbone's visual view of one (dataset, category, split)."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import make_visual

    make_visual(
        sm.input.manifest,
        sm.wildcards.category,
        sm.wildcards.split,
        sm.params.backbone_cfg,
        sm.params.geometry,
        sm.wildcards.view,
        sm.output[0],
        device=sm.params.device,
        options=sm.params.options,
    )


entry(main, snakemake)  # noqa: F821
