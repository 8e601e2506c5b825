"""WinCLIP and WinCLIP+: parameters in :mod:`.params` (torch-free), the window maths and window
embeddings in :mod:`.windows`, the few-shot draw in :mod:`.shots`, the method in :mod:`.method`."""
