"""Seeded construction: a model's initialisation is part of its seed, the caller's RNG is not."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def seeded(seed: int, build: Callable[..., T], *args, **kwargs) -> T:
    """``build(*args, **kwargs)`` under torch's CPU RNG seeded with ``seed``; the global RNG
    state is restored afterwards, so building never shifts any other random stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(*args, **kwargs)
