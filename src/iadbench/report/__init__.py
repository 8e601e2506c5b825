"""The HTML report: tables, figures and published references from the pipeline's result files.

:func:`build_report` reads ``results/summary/metrics.csv`` (plus, optionally, score files,
``cross_domain.csv`` and ``config/references.yaml``) and writes one self-contained
``report.html`` with every figure embedded, and the same figures as PNGs in a folder.
"""

from .build import ITEM_KEYS, build_report

__all__ = ["ITEM_KEYS", "build_report"]
