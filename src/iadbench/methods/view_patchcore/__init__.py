"""PatchCore on weld photos: parameters in :mod:`.params` (torch-free), implementation in
:mod:`.method`."""
