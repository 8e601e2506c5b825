"""Dinomaly and its weld variant: parameters in :mod:`.params` (torch-free), the network and
formulas in :mod:`.model`, files/training/scoring in :mod:`.method`."""
