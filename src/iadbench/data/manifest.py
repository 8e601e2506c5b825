"""The manifest: one row per sample, the only way later rules learn about a dataset.

Columns (Parquet, one file per dataset):

==============  ======  =====================================================================
column          type    meaning
==============  ======  =====================================================================
sample_id       str     unique within the dataset: ``<category>/<split>/<defect_type>/<stem>``
category        str     category name (e.g. ``bottle``)
split           str     ``train`` or ``test``
label           int8    0 = normal, 1 = anomalous
defect_type     str     ``good`` for normal samples, else the defect folder name
image_path      str     path of the image as reachable from the working directory
mask_path       str     path of the ground-truth mask, or null (normal image / no mask)
==============  ======  =====================================================================
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pandas as pd

from iadbench.data.images import image_size, load_mask
from iadbench.data.layouts import LAYOUTS
from iadbench.errors import ConfigError, DataError

log = logging.getLogger(__name__)

COLUMNS = ["sample_id", "category", "split", "label", "defect_type", "image_path", "mask_path"]
SPLITS = ("train", "test")


def to_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Build a manifest frame with the documented column order and dtypes, sorted stably."""
    frame = pd.DataFrame(list(rows), columns=COLUMNS)
    frame["label"] = frame["label"].astype("int8")
    frame["mask_path"] = frame["mask_path"].astype(object).where(frame["mask_path"].notna(), None)
    return frame.sort_values(["category", "split", "sample_id"], kind="stable").reset_index(
        drop=True
    )


def validate(frame: pd.DataFrame, categories: Iterable[str], *, check_masks: bool = True) -> None:
    """Raise one clear error for the first problem that would corrupt a benchmark."""
    dupes = frame["sample_id"][frame["sample_id"].duplicated()]
    if len(dupes):
        raise DataError(dupes.iloc[0], "duplicate sample id in the manifest")
    for category in categories:
        rows = frame[frame["category"] == category]
        if rows.empty:
            raise DataError(category, "category has no images")
        train = rows[rows["split"] == "train"]
        if not (train["label"] == 0).any():
            raise DataError(category, "category has no normal training images")
        if not (rows["split"] == "test").any():
            raise DataError(category, "category has no test images")
    if not check_masks:
        return
    for row in frame.itertuples(index=False):
        if row.label == 1 and row.split == "test" and row.mask_path is None:
            raise DataError(row.image_path, "anomalous test image has no ground-truth mask")
        if row.mask_path is None:
            continue
        if image_size(row.mask_path) != image_size(row.image_path):
            raise DataError(
                row.mask_path,
                f"mask size {image_size(row.mask_path)} differs from image "
                f"{row.image_path} size {image_size(row.image_path)}",
            )
        has_defect = bool(load_mask(row.mask_path).any())
        if row.label == 1 and not has_defect:
            raise DataError(row.mask_path, "mask of an anomalous image has no defect pixels")
        if row.label == 0 and has_defect:
            raise DataError(row.mask_path, "mask of a normal image has defect pixels")


def build_manifest(dataset: str, cfg: dict) -> pd.DataFrame:
    """Read the dataset described by one ``datasets:`` config entry into a validated manifest."""
    layout = cfg.get("layout", "mvtec")
    reader = LAYOUTS.get(layout)
    if reader is None:
        raise ConfigError(
            f"dataset {dataset!r}: unknown layout {layout!r} (known: {', '.join(LAYOUTS)})"
        )
    categories = list(cfg["categories"])
    frame = to_frame(reader(cfg["root"], categories))
    validate(frame, categories)
    log.info("dataset %s: %d samples in %d categories", dataset, len(frame), len(categories))
    return frame
