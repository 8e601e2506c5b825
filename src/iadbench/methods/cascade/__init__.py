"""The gate -> heatmap cascade: parameters in :mod:`.params` (torch-free), the calibration and
routing in :mod:`.method`."""
