"""Where Snakemake's own report (``snakemake --report report.html``) files each result.

The rules mark their results with ``report(..., category=..., subcategory=..., labels=...)``;
the tables name their category directly, and the figures folder of the project's report
(``results/summary/report_figures/<figure>.png``, named by :meth:`iadbench.report.html.Page.image`)
is filed by the figure name's prefix with :func:`figure_category` and
:func:`figure_subcategory`. Torch- and matplotlib-free: the rule files import it at parse time.
"""

from __future__ import annotations

SUMMARY = "Summary"
PER_CATEGORY = "Per category"
CURVES = "Curves"
OVERLAYS = "Overlays"
TIMINGS = "Timings"
METHODS = "Methods"
TABLES = "Tables"
CATEGORIES = (SUMMARY, PER_CATEGORY, CURVES, OVERLAYS, TIMINGS, METHODS)

# figure file name prefix -> (category, subcategory); the subcategory is the section of the
# project's report that shows the figure. Longest prefix first.
FIGURES = {
    "time-by-stage": (TIMINGS, "Time by stage"),
    "training-loss": (METHODS, "Trained methods"),
    "bars": (PER_CATEGORY, "Metrics by category"),
    "defects": (PER_CATEGORY, "Per defect type"),
    "curves": (CURVES, "ROC and PR curves"),
    "overlay": (OVERLAYS, "Anomaly-map overlays"),
    "latency": (METHODS, "Latency"),
    "variance": (METHODS, "Prompt-sampling variance"),
    "cascade": (METHODS, "Cascade"),
    "backbones": (METHODS, "Backbone comparison"),
    "fusion": (METHODS, "Layer-fusion ablation"),
    "cross": (METHODS, "Cross-domain"),
}
OTHER = (METHODS, "Other figures")


def _filed(figure: str) -> tuple[str, str]:
    for prefix in sorted(FIGURES, key=len, reverse=True):
        if figure == prefix or figure.startswith(prefix + "-"):
            return FIGURES[prefix]
    return OTHER


def figure_category(wildcards) -> str:
    """The report category of ``report_figures/<wildcards.figure>.png``."""
    return _filed(wildcards.figure)[0]


def figure_subcategory(wildcards) -> str:
    """The report subcategory (the project report's section) of a figure."""
    return _filed(wildcards.figure)[1]
