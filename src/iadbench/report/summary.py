"""Reading ``metrics.csv`` and the facts the report derives from it (labels, groups, seeds).

The summary is the contract with :mod:`iadbench.metrics.aggregate`: one row per category with
``average == "per_category"``, then a ``macro`` and a ``micro`` row per (dataset, method).
Configuration columns (``kind``, ``base``, ``seed`` and whatever each method's ``describe()``
adds) are optional; every section that needs one is skipped when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from iadbench.errors import CacheError
from iadbench.metrics.defects import DEFECT_PREFIX

REQUIRED = ("dataset", "method", "category", "average")
# (column, short label) in display order; AUPRO labels get the FPR limit appended.
METRICS = (
    ("image_auroc", "I-AUROC"),
    ("image_ap", "I-AP"),
    ("image_f1max", "I-F1max"),
    ("pixel_auroc", "P-AUROC"),
    ("pixel_ap", "P-AP"),
    ("pixel_f1max", "P-F1max"),
    ("aupro", "AUPRO"),
    ("aupro_cflow200", "AUPRO-cflow200"),
)
# Columns that are neither identifiers, metrics nor bookkeeping: the provenance each method's
# describe() adds (backbone, fusion, bank, train_on...), read generically.
NOT_CONFIG = frozenset(
    {"dataset", "method", "category", "average", "grid", "seed", "fpr_limit", "eval_height",
     "eval_width", "n_images", "n_anomalous", "n_normal", "n_pixel_images", "score_std_mean",
     "score_std_max", "map_std_mean", "accuracy", "precision", "recall", "f1", "threshold",
     "heatmap_call_rate"}
)  # fmt: skip


def config_cols(frame: pd.DataFrame) -> list[str]:
    """The provenance columns present, in the summary's order (see :data:`NOT_CONFIG`).

    Per-defect AUROCs (``auroc_<type>``), operating-point results and calibration errors
    (``ece*``) are results, not provenance: seeds that differ in them still form one group.
    """
    metrics = {c for c, _ in METRICS}
    return [
        c
        for c in frame.columns
        if c not in NOT_CONFIG and c not in metrics and not c.startswith((DEFECT_PREFIX, "ece"))
    ]


def load_summary(path: str | Path) -> pd.DataFrame:
    """Read ``metrics.csv`` and check the identifying columns and ``average`` values."""
    frame = pd.read_csv(path)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise CacheError(f"{path}: summary lacks columns {missing}")
    unknown = set(frame["average"]) - {"per_category", "macro", "micro"}
    if unknown:
        raise CacheError(f"{path}: unknown 'average' values {sorted(unknown)}")
    return frame


def metric_cols(frame: pd.DataFrame) -> list[str]:
    """The metric columns present, in display order."""
    return [c for c, _ in METRICS if c in frame.columns]


def fpr_limits(frame: pd.DataFrame) -> list[float]:
    """Distinct AUPRO FPR limits in the frame (empty when not recorded)."""
    if "fpr_limit" not in frame.columns:
        return []
    return sorted({float(v) for v in frame["fpr_limit"].dropna()})


def metric_label(col: str, limits: list[float]) -> str:
    """Short header; AUPRO headers carry their FPR limit (or say it varies per row)."""
    label = dict(METRICS).get(col, col)
    if col.startswith("aupro"):
        if len(limits) == 1:
            return f"{label} (FPR≤{limits[0]:g})"
        return f"{label} (FPR limit: see column)" if limits else f"{label} (FPR limit unknown)"
    return label


def percent(value: object) -> str:
    """A fraction as a percentage with one decimal; missing or undefined as ``n/a``."""
    if value is None or pd.isna(value):
        return "n/a"
    return f"{100.0 * float(value):.1f}"


def rows(frame: pd.DataFrame, average: str) -> pd.DataFrame:
    """The rows of one averaging kind (``per_category``, ``macro``, ``micro``)."""
    return frame[frame["average"] == average].reset_index(drop=True)


def has_values(frame: pd.DataFrame, col: str) -> bool:
    """Whether the optional column exists and holds at least one value."""
    return col in frame.columns and bool(frame[col].notna().any())


def backbone_label(frame: pd.DataFrame) -> pd.Series:
    """The architecture when known (``backbone_model``), else the backbone config name, else
    the encoders of a multimodal method (``role=encoder,...``)."""
    label = pd.Series("?", index=frame.index, dtype=object)
    for col in ("encoders", "backbone", "backbone_model"):
        if col in frame.columns:
            label = frame[col].astype(object).where(frame[col].notna(), label)
    return label.astype(str)


def family(frame: pd.DataFrame) -> pd.Series | None:
    """What makes rows comparable across settings: ``base`` (pre-grid entry) else ``kind``."""
    for col in ("base", "kind"):
        if has_values(frame, col):
            return frame[col].astype(str)
    return None


def seed_groups(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """Groups of macro rows that differ only by ``seed`` (two or more distinct seeds).

    Rows are grouped on dataset and every configuration column present. A group in which a seed
    repeats differs by something the summary does not record (e.g. a coreset ratio), so it is
    not a seed group and is left out rather than averaged.
    """
    if not has_values(frame, "seed"):
        return []
    macro = rows(frame, "macro")
    keys = ["dataset"] + config_cols(macro)
    groups = []
    for _, group in macro.groupby(keys, dropna=False, sort=True):
        seeds = group["seed"].dropna()
        if len(seeds) == len(group) >= 2 and seeds.is_unique:
            groups.append(group.sort_values("seed"))
    return groups


def mean_std(values: pd.Series) -> str:
    """``mean ± std`` in % (sample std, n-1); ``n/a`` when no value is defined."""
    data = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    if data.size == 0:
        return "n/a"
    if data.size == 1:
        return f"{100 * data[0]:.1f} (1 seed)"
    return f"{100 * data.mean():.1f} ± {100 * np.std(data, ddof=1):.1f}"
