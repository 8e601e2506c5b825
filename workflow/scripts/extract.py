"""Snakemake entry: extract one (dataset, backbone, category, split) into the feature store."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import make_features

    make_features(
        sm.input.manifest,
        sm.wildcards.category,
        sm.wildcards.split,
        sm.params.backbone_cfg,
        sm.params.geometry,
        sm.output.npy,
        sm.output.index,
        device=sm.params.device,
    )


entry(main, snakemake)  # noqa: F821
