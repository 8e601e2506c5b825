"""The manifest: one row per sample, the only way later rules learn about a dataset.

Columns (Parquet, one file per dataset):

==============  ======  =====================================================================
column          type    meaning
==============  ======  =====================================================================
sample_id       str     unique within the dataset; ``<category>/<split>/<defect_type>/<stem>``
                        for tree and CSV layouts, ``<category>/<split>/<relative path>`` for
                        ``folder``
category        str     category name (e.g. ``bottle``)
source          str     the dataset the row comes from: the dataset's own name, or for a
                        ``union`` the source dataset's (see :mod:`iadbench.data.union`)
split           str     the split used: ``train``, ``train_labelled``, ``val`` or ``test``
source_split    str     the split the layout gave (``train`` or ``test``); differs from
                        ``split`` only for test rows that ``val_split`` moved (see
                        :mod:`iadbench.data.splits`)
label           int8    0 = normal, 1 = anomalous
defect_type     str     ``good`` for normal samples, else the defect folder name (``ko`` for
                        BTAD, ``anomaly`` for VisA)
image_path      str     path of the image as reachable from the working directory
mask_path       str     path of the ground-truth mask, or null (normal image / no mask)
note            str     ``""``, or ``missing_mask`` for an anomalous test (val,
                        train_labelled) image kept without a mask (``allow_missing_masks:
                        true``): image-level metrics only
==============  ======  =====================================================================

Layouts may add columns after these (a layout's ``EXTRA_COLUMNS``); image layouts add none.
``weld`` (:mod:`iadbench.data.weld`) adds:

================  ==========  ===================================================================
column            type        meaning
================  ==========  ===================================================================
run_id            str         ``MM-DD-YY-NNNN-CC`` (``CC`` = class code)
video_path        str         the run's AVI
audio_path        str         the run's FLAC
sensor_path       str         the run's welding-sensor CSV
photo_paths       list[str]   every post-weld photo, sorted (``image_path`` is the first); read
                              back from Parquet as an array of str
weld_type         str         manifest.csv ``WELD_TYPE`` (e.g. ``FILLET``)
thickness_mm      float64     ``THICKNESS_MM``
steel_type        str         ``STEEL_TYPE`` (e.g. ``FE410``)
current_a         float64     ``CURRENT_A`` (set point)
voltage_v         float64     ``VOLTAGE_V``
gas_bar           float64     ``GAS_BAR``
robot_speed_cpm   float64     ``ROBOT_SPEED_CPM``
================  ==========  ===================================================================

``frame.attrs["orphan_masks"]`` lists the mask files that no sample uses (each also logged); a
layout's ``attrs(cfg, categories)`` adds more (``weld``: ``dropped_runs``, ``label_mask``). Parquet
keeps the attrs in its metadata.

The sample id keeps the layout's split, so a row moved to ``val`` stays findable under its
original name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pandas as pd

from iadbench.data.images import check_image, load_mask, mask_threshold, require_utf8
from iadbench.data.layouts import Layout, get_layout
from iadbench.data.splits import apply_val_split
from iadbench.errors import ConfigError, DataError
from iadbench.progress import Progress

log = logging.getLogger(__name__)

COLUMNS = [
    "sample_id",
    "category",
    "source",
    "split",
    "source_split",
    "label",
    "defect_type",
    "image_path",
    "mask_path",
    "note",
]
SPLITS = ("train", "train_labelled", "val", "test")
# splits whose anomalous images carry masks (every split but the normal-only training set)
MASKED_SPLITS = ("train_labelled", "val", "test")
MISSING_MASK = "missing_mask"
SORT_KEY = ["category", "split", "sample_id"]


def to_frame(rows: Iterable[dict], extra_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Build a manifest frame with the documented column order and dtypes, sorted stably.

    Layouts set neither ``source_split`` (the row's ``split`` where absent) nor ``source``
    (``""`` where absent; :func:`build_manifest` fills in the dataset name). ``extra_columns``
    (a layout's ``EXTRA_COLUMNS``) follow the common ones.
    """
    frame = pd.DataFrame(list(rows), columns=[*COLUMNS, *extra_columns])
    frame["source"] = [source if isinstance(source, str) else "" for source in frame["source"]]
    frame["source_split"] = frame["source_split"].where(
        frame["source_split"].notna(), frame["split"]
    )
    frame["label"] = frame["label"].astype("int8")
    frame["mask_path"] = frame["mask_path"].astype(object).where(frame["mask_path"].notna(), None)
    frame["note"] = [note if isinstance(note, str) else "" for note in frame["note"]]
    return _sorted(frame)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(SORT_KEY, kind="stable").reset_index(drop=True)


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
    """Anomalous test (val, train_labelled) images without mask: an error, or noted.

    Kept images get note ``missing_mask`` so pixel metrics can skip them.
    """
    missing = (frame["label"] == 1) & frame["split"].isin(MASKED_SPLITS) & frame["mask_path"].isna()
    if missing.any() and not allow:
        first = frame.loc[missing].iloc[0]
        raise DataError(
            first["image_path"],
            f"anomalous {first['split']} image has no ground-truth mask "
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


def _check_categories(
    frame: pd.DataFrame, categories: Iterable[str], root: str, *, require_train: bool = True
) -> None:
    """Every category has test images and (unless ``require_train`` is off) training images.

    Unions turn ``require_train`` off: a 100 %-anomalous source has no training images.
    """
    trained_anomalies = frame[(frame["split"] == "train") & (frame["label"] == 1)]
    if len(trained_anomalies):
        raise DataError(trained_anomalies["image_path"].iloc[0], "anomalous image in train split")
    for category in categories:
        rows = frame[frame["category"] == category]
        if rows.empty:
            raise DataError(root, f"category {category!r} has no images")
        if require_train and not (rows["split"] == "train").any():
            raise DataError(root, f"category {category!r} has no normal training images")
        if not (rows["split"] == "test").any():
            raise DataError(root, f"category {category!r} has no test images")


def _check_files(frame: pd.DataFrame, threshold: int) -> None:
    rows = Progress(
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


def val_split(
    frame: pd.DataFrame,
    spec,
    categories: Iterable[str],
    root: str,
    *,
    require_train: bool = True,
) -> pd.DataFrame:
    """Apply a ``val_split:`` config mapping to a checked manifest, re-sorted like ``to_frame``.

    Runs after the checks and notes so ``missing_mask`` notes travel with the moved rows; the
    category check runs again because every category must keep test images
    (``require_train`` as in :func:`_check_categories`).
    """
    if not isinstance(spec, dict) or "fraction" not in spec:
        raise ConfigError(
            f"val_split must be a mapping {{fraction, seed, labelled_fraction}}, got {spec!r}"
        )
    unknown = sorted(set(spec) - {"fraction", "seed", "labelled_fraction"})
    if unknown:
        raise ConfigError(f"val_split: unknown keys {unknown}")
    frame = _sorted(
        apply_val_split(
            frame,
            spec["fraction"],
            seed=spec.get("seed", 0),
            labelled_fraction=spec.get("labelled_fraction", 0.0),
        )
    )
    _check_categories(frame, categories, root, require_train=require_train)
    return frame


def _log_moves(dataset: str, frame: pd.DataFrame) -> None:
    tested = frame[frame["source_split"] == "test"]
    for category, rows in tested.groupby("category", sort=True):
        counts = rows["split"].value_counts()
        log.info(
            "dataset %s, category %s: %d test images -> %d val, %d train_labelled, %d test",
            dataset,
            category,
            len(rows),
            counts.get("val", 0),
            counts.get("train_labelled", 0),
            counts.get("test", 0),
        )


def build_manifest(dataset: str, cfg: dict) -> pd.DataFrame:
    """Read the dataset described by one ``datasets:`` config entry into a validated manifest."""
    try:
        if cfg.get("layout") == "union":
            raise ConfigError(
                "layout 'union' is built from its sources' manifests "
                "(iadbench.data.union.union_manifest), not read from disk"
            )
        layout = get_layout(cfg.get("layout", "mvtec"))
        categories = resolve_categories(cfg, layout)
        extra = getattr(layout, "EXTRA_COLUMNS", ())
        frame = to_frame(layout.read(cfg, categories), extra).assign(source=dataset)
        _check_names(frame)
        orphans = orphan_masks(layout.mask_files(cfg, categories), frame)
        for path in orphans:
            log.warning("%s: mask without a matching image (ignored)", path)
        if getattr(layout, "HAS_MASKS", True):
            frame = mark_missing_masks(frame, bool(cfg.get("allow_missing_masks", False)))
        validate(frame, categories, root=str(cfg["root"]), threshold=mask_threshold(cfg))
        if cfg.get("val_split") is not None:
            frame = val_split(frame, cfg["val_split"], categories, str(cfg["root"]))
            _log_moves(dataset, frame)
        layout_attrs = layout.attrs(cfg, categories) if hasattr(layout, "attrs") else {}
    except ConfigError as exc:
        raise ConfigError(f"dataset {dataset!r}: {exc}") from None
    frame.attrs.update(layout_attrs)
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
