"""Feature store: backbone features extracted once per (dataset, backbone, category, split)."""

from iadbench.features.aggregate import aggregate_patches, layer_shares
from iadbench.features.store import FeatureSet, config_hash, load_features, write_features

__all__ = [
    "FeatureSet",
    "aggregate_patches",
    "config_hash",
    "layer_shares",
    "load_features",
    "write_features",
]
