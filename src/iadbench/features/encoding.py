"""What every modality encoder shares: its output unit, input normalisation and autocast."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class View:
    """One sequence of a run: float32 ``(length, dim)`` tokens; ``grid`` for image patches."""

    tokens: np.ndarray
    grid: tuple[int, int] = (0, 0)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA only: CPU results stay full precision and reproducible."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda")
    return contextlib.nullcontext()


def normalised(
    images: np.ndarray,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    device: torch.device,
) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` -> float ``(N, 3, H, W)`` on ``device``, standardised."""
    batch = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2)
    batch = batch.float().div_(255.0)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    return (batch - mean_t) / std_t


def chunks(n: int, size: int) -> list[slice]:
    """Consecutive slices of at most ``size`` covering ``range(n)``."""
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]
