"""Snakemake entry: extract one (dataset, backbone, category, split) into the feature store."""

from iadbench.logs import logged
from iadbench.pipeline import make_features

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    make_features(
        sm.input.manifest,
        sm.wildcards.category,
        sm.wildcards.split,
        sm.params.backbone,
        sm.params.geometry,
        sm.output.npy,
        sm.output.index,
        device=sm.params.device,
    )
