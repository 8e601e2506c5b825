"""Crane + Bayes prompts + ResCLIP: parameters in :mod:`.params` (torch-free); E-Attn, D-Attn and
the scoring in :mod:`.refined`, RCS in :mod:`.rcs`, prompt sampling in :mod:`.bayes`, the cached
view in :mod:`.views`, the method in :mod:`.method`."""
