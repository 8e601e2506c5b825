"""Feature store: backbone features extracted once per (dataset, backbone, category, split).

Submodules are imported by name (``iadbench.features.store``, ``.patches``, ``.fusion``...):
this package imports nothing itself, so torch-free callers (the rules) stay torch-free.
"""
