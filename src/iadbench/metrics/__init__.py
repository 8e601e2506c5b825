"""Benchmark metrics (METHODS.md §7, §10): image, pixel, AUPRO, per-category and aggregates.

``aupro`` is the official MVTec AD AUPRO (headline); ``aupro_cflow200`` is the research-code
variant, kept only to compare with published tables.
"""

from .aggregate import macro_mean, micro_metrics, summarise, to_markdown
from .defects import per_defect_auroc
from .evaluate import METRIC_COLS, evaluate_category
from .image import f1_max, image_ap, image_auroc
from .pixel import (
    aupro,
    aupro_cflow200,
    pixel_ap,
    pixel_auroc,
    pixel_f1_max,
    pixel_metrics,
    pro_curve,
)

__all__ = [
    "METRIC_COLS",
    "aupro",
    "aupro_cflow200",
    "evaluate_category",
    "f1_max",
    "image_ap",
    "image_auroc",
    "macro_mean",
    "micro_metrics",
    "per_defect_auroc",
    "pixel_ap",
    "pixel_auroc",
    "pixel_f1_max",
    "pixel_metrics",
    "pro_curve",
    "summarise",
    "to_markdown",
]
