"""Snakemake entry: the frozen residual stream of one (dataset, category, split) for training."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline.clip import make_frozen

    make_frozen(
        sm.input.manifest,
        sm.wildcards.category,
        sm.wildcards.split,
        sm.params.backbone_cfg,
        sm.params.geometry,
        sm.wildcards.view,
        sm.output.tokens,
        sm.output.meta,
        device=sm.params.device,
    )


entry(main, snakemake)  # noqa: F821
