"""Device choice: ``auto`` means CUDA when present, otherwise CPU; nothing assumes a GPU."""

from __future__ import annotations

import torch

from iadbench.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """Map a config value (``auto``, ``cpu``, ``cuda``, ``cuda:1``) to a usable torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available on this machine")
    return device
