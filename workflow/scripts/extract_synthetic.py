"""Snakemake entry: cache the features of one category's synthetic anomalies (feature gate)."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import make_synthetic_features

    make_synthetic_features(
        sm.input.manifest,
        sm.wildcards.category,
        sm.wildcards.recipe,
        int(sm.wildcards.copies),
        int(sm.wildcards.seed),
        sm.params.backbone_cfg,
        sm.params.geometry,
        sm.output.npy,
        sm.output.index,
        device=sm.params.device,
    )


entry(main, snakemake)  # noqa: F821
