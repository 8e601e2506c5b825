"""Variance analysis: the per-image spread over prompt samples of one result (METHODS §12)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from iadbench.io import atomic_path, save_text


def variance_analysis(
    scores: str | Path, csv_out: str | Path, png_out: str | Path, title: str
) -> pd.DataFrame:
    """``scores.parquet`` -> a CSV of each image's score std and mean map std over the samples,
    and their histograms as a PNG."""
    from iadbench.report.figures import to_png
    from iadbench.report.variance import histogram_figure, variance_table

    frame = variance_table(pd.read_parquet(scores), str(scores))
    save_text(csv_out, frame.to_csv(index=False))
    with atomic_path(png_out) as tmp:
        tmp.write_bytes(to_png(histogram_figure(frame, title)))
    return frame
