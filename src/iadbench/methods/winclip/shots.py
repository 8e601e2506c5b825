"""Few-shot reference draws (torch-free, so DAG-building code may call it too)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iadbench.errors import ConfigError


def draw_references(paths: Sequence[str], k_shot: int, seed: int) -> list[int]:
    """Indices into ``paths`` of ``k_shot`` distinct normal references, in ascending order.

    The draw depends on the set of paths and the seed only, not on the order the paths come in
    (they are sorted before drawing), so the same seed picks the same images whatever the
    manifest order; numpy's PCG64 keeps it identical across platforms and versions.
    """
    if len(set(paths)) != len(paths):
        raise ConfigError("few-shot references: the candidate paths contain duplicates")
    if not 1 <= k_shot <= len(paths):
        raise ConfigError(
            f"k_shot {k_shot}: needs 1..{len(paths)} (the number of normal training images)"
        )
    order = sorted(range(len(paths)), key=lambda i: str(paths[i]))
    picks = np.random.default_rng(seed).choice(len(paths), size=k_shot, replace=False)
    return sorted(order[int(i)] for i in picks)
