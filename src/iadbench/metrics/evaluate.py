"""One category's full metric row: the unit that the macro average is taken over (§7.1)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .defects import defect_columns
from .image import check_binary_scores, f1_max, image_ap, image_auroc
from .pixel import Maps, Masks, _check_limit, pixel_metrics

PIXEL_KEYS = ("pixel_auroc", "pixel_ap", "pixel_f1max", "aupro", "aupro_cflow200")
METRIC_COLS = ("image_auroc", "image_ap", "image_f1max") + PIXEL_KEYS


def _eval_size(maps: Maps | None) -> tuple[int | None, int | None]:
    """(H, W) shared by all maps, or (None, None) when sizes differ or there are no maps."""
    if maps is None or len(maps) == 0:
        return None, None
    if isinstance(maps, np.ndarray):
        return int(maps.shape[1]), int(maps.shape[2])
    shapes = {np.shape(m) for m in maps}
    if len(shapes) != 1:
        return None, None
    (shape,) = shapes
    return (int(shape[0]), int(shape[1])) if len(shape) == 2 else (None, None)


def evaluate_category(
    labels: ArrayLike,
    image_scores: ArrayLike,
    masks: Masks | None,
    maps: Maps | None,
    fpr_limit: float = 0.3,
    pixel_subset: ArrayLike | None = None,
    defect_types: ArrayLike | None = None,
) -> dict[str, Any]:
    """Image and pixel metrics of one category's test set.

    Pixel metrics pool every test image (normal ones with all-zero or None masks). With
    ``masks`` or ``maps`` None (no pixel ground truth / no maps) the pixel metrics are NaN.
    Metrics undefined for the data (a single class) are NaN, never a made-up number.
    ``eval_height``/``eval_width`` are the maps' size when all maps share it, else None.
    ``pixel_subset`` (bool per image) limits pixel metrics to images whose ground truth is
    known, e.g. anomalous images kept without a mask under ``allow_missing_masks``.
    ``defect_types`` (one per image) adds ``auroc_<type>`` per defect type when there are two
    or more (:func:`iadbench.metrics.defects.defect_columns`).
    """
    fpr_limit = _check_limit(fpr_limit)
    y, s = check_binary_scores(labels, image_scores, what="image_scores")
    row: dict[str, Any] = {
        "image_auroc": image_auroc(y, s),
        "image_ap": image_ap(y, s),
        "image_f1max": f1_max(y, s),
    }
    row.update(dict.fromkeys(PIXEL_KEYS, float("nan")))
    if maps is not None and len(maps) != len(y):
        raise ValueError(f"number of maps ({len(maps)}) != number of labels ({len(y)})")
    n_pixel = int(y.size)
    if masks is not None and maps is not None:
        if pixel_subset is not None:
            keep = np.flatnonzero(np.asarray(pixel_subset, dtype=bool))
            masks, maps = [masks[i] for i in keep], [maps[i] for i in keep]
            n_pixel = int(keep.size)
        row.update(pixel_metrics(masks, maps, fpr_limit))
    height, width = _eval_size(maps)
    n_anomalous = int(y.sum())
    row.update(
        fpr_limit=float(fpr_limit),
        n_images=int(y.size),
        n_anomalous=n_anomalous,
        n_normal=int(y.size) - n_anomalous,
        n_pixel_images=n_pixel,
        eval_height=height,
        eval_width=width,
    )
    row.update(defect_columns(y, s, defect_types))
    return row
