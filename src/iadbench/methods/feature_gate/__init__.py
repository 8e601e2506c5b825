"""The feature gate: parameters in :mod:`.params` (torch-free), implementation in
:mod:`.method`."""
