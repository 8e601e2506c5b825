"""APRIL-GAN: parameters in :mod:`.params` (torch-free), the linear heads in :mod:`.method`."""
