"""Validation and labelled-training splits carved out of a manifest's test rows.

Thresholds, calibration and model selection need images that the reported metrics never see, and
methods trained on labelled anomalies need a few of them. Both come from the layout's ``test``
split, per category and stratified by ``defect_type`` (``good`` is a stratum too), so every
defect type stays represented in what is left for testing. Training rows never move.

The draw of one stratum depends only on ``(seed, category, defect_type)`` and the stratum's
sorted sample ids: adding a category, a defect type or images of another stratum never changes
which images an existing stratum gives away.
"""

from __future__ import annotations

import math
import numbers
import zlib
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

from iadbench.errors import ConfigError

VAL = "val"
TRAIN_LABELLED = "train_labelled"


def _round_half_up(share: float, n: int) -> int:
    """``share * n`` rounded half up, on the decimal value as written (0.15 * 10 -> 2, not 1)."""
    return int((Decimal(repr(float(share))) * n).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def stratum_counts(n: int, fraction: float, labelled_fraction: float = 0.0) -> tuple[int, int]:
    """``(n_val, n_labelled)`` for a stratum of ``n`` test images; see :func:`apply_val_split`."""
    n_val = 0 if n < 2 else min(n - 1, max(1, _round_half_up(fraction, n)))
    rest = n - n_val
    if labelled_fraction <= 0 or rest < 2:
        return n_val, 0
    return n_val, min(rest - 1, max(1, _round_half_up(labelled_fraction, n)))


def _number(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"val_split.{key} must be a number, got {value!r}")
    return float(value)


def check_params(fraction, seed, labelled_fraction) -> tuple[float, int, float]:
    """The three ``val_split`` values, checked (build_manifest may run without the schema)."""
    fraction = _number(fraction, "fraction")
    labelled_fraction = _number(labelled_fraction, "labelled_fraction")
    if not 0 < fraction < 1:
        raise ConfigError(f"val_split.fraction must be in (0, 1), got {fraction!r}")
    if not 0 <= labelled_fraction < 1:
        raise ConfigError(
            f"val_split.labelled_fraction must be in [0, 1), got {labelled_fraction!r}"
        )
    if fraction + labelled_fraction >= 1:
        raise ConfigError(
            f"val_split.fraction + val_split.labelled_fraction must be < 1 (got {fraction!r} + "
            f"{labelled_fraction!r}): some of every stratum must stay in the test split"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"val_split.seed must be an integer >= 0, got {seed!r}")
    return fraction, int(seed), labelled_fraction


def stratum_rng(seed: int, category: str, defect_type: str) -> np.random.Generator:
    """The generator of one stratum, keyed so that other strata cannot shift its draw."""
    return np.random.default_rng([seed, zlib.crc32(f"{category}/{defect_type}".encode())])


def apply_val_split(
    frame: pd.DataFrame, fraction: float, seed: int = 0, labelled_fraction: float = 0.0
) -> pd.DataFrame:
    """Move a seeded share of each test stratum to ``val`` (and to ``train_labelled``).

    Strata are the ``(category, defect_type)`` groups of the rows whose ``split`` is ``test``.
    For a stratum of ``n`` images (``round`` is half up, on the fraction as written):

    - ``n_val = 0`` if ``n < 2``, else ``min(n - 1, max(1, round(fraction * n)))``;
    - ``n_lab = 0`` unless ``labelled_fraction > 0`` and ``n - n_val >= 2``, else
      ``min(n - n_val - 1, max(1, round(labelled_fraction * n)))``.

    So a stratum of two or more images gives at least one to ``val`` and keeps at least one in
    ``test``; a single image stays in ``test``. The stratum's rows, sorted by ``sample_id``, are
    permuted by :func:`stratum_rng`; the first ``n_val`` go to ``val``, the next ``n_lab`` to
    ``train_labelled`` (the val draw therefore does not depend on ``labelled_fraction``).

    Returns a copy with the same index and row order; ``source_split`` (added from ``split``
    when absent) keeps the layout's split of every row. ``fraction + labelled_fraction >= 1``
    is a :class:`~iadbench.errors.ConfigError`.
    """
    fraction, seed, labelled_fraction = check_params(fraction, seed, labelled_fraction)
    out = frame.copy()
    if "source_split" in out:
        out["source_split"] = out["source_split"].where(out["source_split"].notna(), out["split"])
    else:
        out["source_split"] = out["split"]
    split = out["split"].to_numpy(dtype=object, copy=True)
    # positions, not labels: the caller's index need not be unique
    test = out.loc[split == "test", ["category", "defect_type", "sample_id"]].assign(
        position=np.flatnonzero(split == "test")
    )
    for (category, defect), rows in test.groupby(["category", "defect_type"], sort=True):
        n_val, n_lab = stratum_counts(len(rows), fraction, labelled_fraction)
        if n_val + n_lab == 0:
            continue
        positions = rows.sort_values("sample_id", kind="stable")["position"].to_numpy()
        drawn = positions[stratum_rng(seed, str(category), str(defect)).permutation(len(positions))]
        split[drawn[:n_val]] = VAL
        split[drawn[n_val : n_val + n_lab]] = TRAIN_LABELLED
    out["split"] = split
    return out
