"""Per defect type: which defect classes each method finds, as a table and a heat map.

Reads the summary's ``auroc_<type>`` columns (normal vs one defect type, see
:mod:`iadbench.metrics.defects`) on per-category rows; one table and one figure per
(dataset, category) that has them. Fused methods' component rows (``method[modality]``) sort
beside their method, so fusion and single modalities read side by side.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from iadbench.metrics.defects import DEFECT_PREFIX, defect_cols

from .figures import annotate_cells, new_figure, to_png
from .html import Page, paragraph, table
from .summary import percent, rows

ALL = "all (pooled)"


def defect_matrix(per_cat: pd.DataFrame) -> pd.DataFrame:
    """Method × (pooled, then each defect type) AUROC of one (dataset, category), fractions.

    Only the defect types with a value in these rows; empty when there are none.
    """
    cols = [c for c in defect_cols(per_cat) if per_cat[c].notna().any()]
    if not cols:
        return pd.DataFrame()
    frame = per_cat.sort_values("method", kind="stable").set_index("method")
    matrix = frame[["image_auroc", *cols]].apply(pd.to_numeric, errors="coerce")
    matrix.columns = [ALL, *(c.removeprefix(DEFECT_PREFIX) for c in cols)]
    matrix.index = matrix.index.astype(str)
    return matrix


def defect_table(matrix: pd.DataFrame, caption: str) -> str:
    """The matrix in %, one decimal, methods as rows."""
    shown = pd.DataFrame({"method": matrix.index})
    for col in matrix.columns:
        shown[col] = [percent(v) for v in matrix[col]]
    return table(shown, caption, numeric=list(matrix.columns))


def _tick(name: str) -> str:
    """A defect class name wrapped onto short lines (12 classes must fit side by side)."""
    return "\n".join(textwrap.wrap(name.replace("_", " "), 14)) or name


def defect_heatmap(matrix: pd.DataFrame, title: str) -> Figure | None:
    """Methods × defect classes, AUROC in % annotated; the pooled column first, set apart."""
    if matrix.empty:
        return None
    values = 100 * matrix.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    vmin = float(min(50.0, np.floor(finite.min() / 10) * 10)) if finite.size else 50.0
    n_rows, n_cols = values.shape
    fig = new_figure(3.0 + 0.85 * n_cols, max(2.4, 1.6 + 0.4 * n_rows))
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="viridis", aspect="auto", vmin=vmin, vmax=100)
    annotate_cells(ax, values, vmin, 100, ".1f")
    ax.axvline(0.5, color="w", linewidth=3)
    ax.set_xticks(range(n_cols), [_tick(str(c)) for c in matrix.columns], fontsize=7)
    ax.set_yticks(range(n_rows), matrix.index, fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="AUROC (%)", pad=0.01)
    return fig


def add_defect_section(page: Page, summary: pd.DataFrame) -> None:
    """ "Per defect type", when any per-category row has a per-defect AUROC."""
    per_cat = rows(summary, "per_category")
    matrices = {
        key: matrix
        for key, group in per_cat.groupby(["dataset", "category"], sort=True)
        if not (matrix := defect_matrix(group)).empty
    }
    if not matrices:
        return
    sec = page.section("Per defect type")
    sec.add(
        paragraph(
            "I-AUROC of the normal test samples against the samples of one defect type only; "
            f"'{ALL}' is the usual I-AUROC over all defects. Shown for categories whose test "
            "split holds two or more defect types. Rows named method[modality] score with one "
            "modality of a fused method, on the same samples."
        )
    )
    for (dataset, category), matrix in matrices.items():
        name = f"{dataset} / {category}"
        sec.add(defect_table(matrix, f"{name}: I-AUROC per defect type, %"))
        fig = defect_heatmap(matrix, f"{name}: I-AUROC per defect type")
        caption = f"{name}: normal test samples vs each defect type (blank: n/a)"
        sec.add(page.image(f"defects {dataset} {category}", to_png(fig), caption))
