"""Snakemake entry: distances between two categories' training-feature distributions."""

from iadbench.logs import logged
from iadbench.pipeline import feature_distance

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    feature_distance(
        (sm.input.a_npy, sm.input.a_index),
        (sm.input.b_npy, sm.input.b_index),
        sm.params.backbone,
        sm.params.geometry,
        sm.output[0],
        seed=sm.params.seed,
        max_samples=sm.params.max_samples,
    )
