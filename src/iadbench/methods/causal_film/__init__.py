"""Causal-FiLM: parameters in :mod:`.params` (torch-free), the networks in :mod:`.film` and
:mod:`.mamba`, the method in :mod:`.method`."""
