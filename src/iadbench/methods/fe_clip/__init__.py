"""FE-CLIP: parameters in :mod:`.params` (torch-free), the FFE/LFS adapters in :mod:`.adapters`,
the head in :mod:`.method`."""
