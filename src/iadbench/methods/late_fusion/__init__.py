"""Late fusion of audio and video autoencoders: parameters in :mod:`.params` (torch-free), the
autoencoders in :mod:`.autoencoders`, the method in :mod:`.method`."""
