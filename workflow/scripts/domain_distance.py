"""Snakemake entry: distances between two categories' training-feature distributions."""

from iadbench.warm import entry


def main(sm):
    from iadbench.pipeline import feature_distance

    feature_distance(
        (sm.input.a_npy, sm.input.a_index),
        (sm.input.b_npy, sm.input.b_index),
        sm.params.backbone_cfg,
        sm.params.geometry,
        sm.output[0],
        seed=sm.params.seed,
        max_samples=sm.params.max_samples,
    )


entry(main, snakemake)  # noqa: F821
