"""What the multimodal weld-inspection kinds (causal_film, late_fusion, view_patchcore) share,
METHODS §6.2-6.3: their parameters' base in :mod:`.params` (torch-free) and the reading and
batching of cached per-modality embeddings in :mod:`.stores`. Each kind has its own folder."""
