"""Matplotlib figures without pyplot: no global state to leak, nothing left open.

Figures are plain :class:`matplotlib.figure.Figure` objects rendered by the Agg canvas, so the
report never depends on (or changes) the session's pyplot backend.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 80


def new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    """A figure of ``width`` x ``height`` inches on an Agg canvas (constrained layout default)."""
    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def to_png(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes; the figure is cleared afterwards to free its memory."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    fig.clear()
    return buffer.getvalue()


def annotate_cells(ax: Axes, values: np.ndarray, vmin: float, vmax: float, fmt: str) -> None:
    """Write each finite cell value; dark text on the light end of the colour map."""
    span = vmax - vmin if vmax > vmin else 1.0
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            colour = "k" if (v - vmin) / span > 0.6 else "w"
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=7, color=colour)
