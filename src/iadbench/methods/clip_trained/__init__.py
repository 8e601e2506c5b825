"""What the trained CLIP kinds (APRIL-GAN, FE-CLIP) share: their parameters' base in
:mod:`.params` (torch-free) and the data, losses, training and scoring in :mod:`.trainer`."""
