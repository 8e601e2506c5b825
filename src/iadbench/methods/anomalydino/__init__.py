"""AnomalyDINO: parameters in :mod:`.params` (torch-free), the maths in :mod:`.ops`, the method
in :mod:`.method`."""
