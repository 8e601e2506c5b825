"""M3DM on weld runs (METHODS §6.1): parameters in :mod:`.params` (torch-free), the pseudo point
cloud in :mod:`.pointcloud`, the Point-MAE encoder in :mod:`.pointmae`, the decision-layer
fusion in :mod:`.dlf` and the method in :mod:`.method`."""
