"""The manifest: one row per sample, the only way later rules learn about a dataset.

Columns (Parquet, one file per dataset):

==============  ======  =====================================================================
column          type    meaning
==============  ======  =====================================================================
sample_id       str     unique within the dataset; ``<category>/<split>/<defect_type>/<stem>``
                        for tree and CSV layouts, ``<category>/<split>/<relative path>`` for
                        ``folder``
category        str     category name (e.g. ``bottle``)
split           str     ``train`` or ``test``
label           int8    0 = normal, 1 = anomalous
defect_type     str     ``good`` for normal samples, else the defect folder name (``ko`` for
                        BTAD, ``anomaly`` for VisA)
image_path      str     path of the image as reachable from the working directory
mask_path       str     path of the ground-truth mask, or null (normal image / no mask)
note            str     ``""``, or ``missing_mask`` for an anomalous test image kept without a
                        mask (``allow_missing_masks: true``): image-level metrics only
==============  ======  =====================================================================

``frame.attrs["orphan_masks"]`` lists the mask files that no sample uses (each also logged).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pandas as pd
from tqdm.auto import tqdm

from iadbench.data.images import check_image, load_mask, mask_threshold, require_utf8
from iadbench.data.layouts import Layout, get_layout
from iadbench.errors import ConfigError, DataError

log = logging.getLogger(__name__)

COLUMNS = [
    "sample_id",
    "category",
    "split",
    "label",
    "defect_type",
    "image_path",
    "mask_path",
    "note",
]
SPLITS = ("train", "test")
MISSING_MASK = "missing_mask"


def to_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Build a manifest frame with the documented column order and dtypes, sorted stably."""
    frame = pd.DataFrame(list(rows), columns=COLUMNS)
    frame["label"] = frame["label"].astype("int8")
    frame["mask_path"] = frame["mask_path"].astype(object).where(frame["mask_path"].notna(), None)
    frame["note"] = [note if isinstance(note, str) else "" for note in frame["note"]]
    return frame.sort_values(["category", "split", "sample_id"], kind="stable").reset_index(
        drop=True
    )


def resolve_categories(cfg: dict, layout: Layout) -> list[str]:
    """The config's category list; ``"all"`` asks the layout what is on disk."""
    spec = cfg.get("categories")
    if spec == "all":
        categories = layout.discover(cfg)
        if not categories:
            raise DataError(cfg["root"], "no categories found (categories: all)")
        return categories
    if isinstance(spec, str) or not spec:
        raise ConfigError(f"categories must be a non-empty list or 'all', got {spec!r}")
    return list(spec)


def mark_missing_masks(frame: pd.DataFrame, allow: bool) -> pd.DataFrame:
    """Anomalous test images without mask: an error, or kept with note ``missing_mask``."""
    missing = (frame["label"] == 1) & (frame["split"] == "test") & frame["mask_path"].isna()
    if missing.any() and not allow:
        raise DataError(
            frame.loc[missing, "image_path"].iloc[0],
            "anomalous test image has no ground-truth mask "
            "(set allow_missing_masks: true to keep it for image-level metrics only)",
        )
    frame = frame.copy()
    frame.loc[missing, "note"] = MISSING_MASK
    return frame


def _check_names(frame: pd.DataFrame) -> None:
    for column in ("image_path", "mask_path", "category"):
        for value in frame[column].dropna():
            require_utf8(value)


def _check_duplicates(frame: pd.DataFrame) -> None:
    dupes = frame[frame["sample_id"].duplicated(keep=False)]
    if len(dupes):
        first = dupes[dupes["sample_id"] == dupes["sample_id"].iloc[0]]["image_path"].tolist()
        raise DataError(
            first[0],
            f"duplicate sample id {dupes['sample_id'].iloc[0]!r}, also given by {first[1]} "
            "(same name with another extension?)",
        )


def _check_categories(frame: pd.DataFrame, categories: Iterable[str], root: str) -> None:
    trained_anomalies = frame[(frame["split"] == "train") & (frame["label"] == 1)]
    if len(trained_anomalies):
        raise DataError(trained_anomalies["image_path"].iloc[0], "anomalous image in train split")
    for category in categories:
        rows = frame[frame["category"] == category]
        if rows.empty:
            raise DataError(root, f"category {category!r} has no images")
        if not (rows["split"] == "train").any():
            raise DataError(root, f"category {category!r} has no normal training images")
        if not (rows["split"] == "test").any():
            raise DataError(root, f"category {category!r} has no test images")


def _check_files(frame: pd.DataFrame, threshold: int) -> None:
    rows = tqdm(
        frame.itertuples(index=False), total=len(frame), desc="checking", unit="img", disable=None
    )
    for row in rows:
        size = check_image(row.image_path)
        if row.mask_path is None:
            continue
        mask = load_mask(row.mask_path, threshold)
        if mask.shape != size:
            raise DataError(
                row.mask_path,
                f"mask size {mask.shape} differs from image {row.image_path} size {size}",
            )
        if row.label == 1 and not mask.any():
            raise DataError(
                row.mask_path,
                f"mask of an anomalous image has no defect pixels (none > {threshold})",
            )
        if row.label == 0 and mask.any():
            raise DataError(
                row.mask_path,
                f"mask of a normal image has defect pixels ({int(mask.sum())} > {threshold})",
            )


def validate(
    frame: pd.DataFrame, categories: Iterable[str], *, root: str, threshold: int = 0
) -> None:
    """Raise one clear error for the first problem that would corrupt a benchmark.

    Decodes every image (cheaply, see :func:`~iadbench.data.images.check_image`) and mask, so
    truncated or corrupt files fail here rather than in a later rule.
    """
    _check_names(frame)
    _check_duplicates(frame)
    _check_categories(frame, categories, root)
    _check_files(frame, threshold)


def orphan_masks(mask_files: Iterable[str], frame: pd.DataFrame) -> list[str]:
    """Mask files that no sample of the manifest uses, sorted."""
    used = set(frame["mask_path"].dropna())
    return sorted(set(mask_files) - used)


def build_manifest(dataset: str, cfg: dict) -> pd.DataFrame:
    """Read the dataset described by one ``datasets:`` config entry into a validated manifest."""
    try:
        layout = get_layout(cfg.get("layout", "mvtec"))
        categories = resolve_categories(cfg, layout)
        frame = to_frame(layout.read(cfg, categories))
        _check_names(frame)
        orphans = orphan_masks(layout.mask_files(cfg, categories), frame)
        for path in orphans:
            log.warning("%s: mask without a matching image (ignored)", path)
        frame = mark_missing_masks(frame, bool(cfg.get("allow_missing_masks", False)))
        validate(frame, categories, root=str(cfg["root"]), threshold=mask_threshold(cfg))
    except ConfigError as exc:
        raise ConfigError(f"dataset {dataset!r}: {exc}") from None
    frame.attrs["orphan_masks"] = orphans
    log.info(
        "dataset %s: %d samples in %d categories, %d kept without mask, %d orphan masks",
        dataset,
        len(frame),
        len(categories),
        int((frame["note"] == MISSING_MASK).sum()),
        len(orphans),
    )
    return frame
