"""Sample rows of a cascade: a few test images with their routing and the heatmap method's map.

The selection is deterministic (:func:`sample_rows`) so that successive reports show the same
images; the overlay reuses :mod:`iadbench.report.overlays`' colouring, with the heatmap method's
map found by ``sample_id`` (the cascade has no maps of its own).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from iadbench.data.images import Geometry, load_image
from iadbench.errors import CacheError

from .figures import new_figure
from .overlays import GAP, heat_tiles, map_range, mosaic

# (route, label) cells the sample rows are drawn from, in turn; see sample_rows.
SAMPLE_CELLS = (("heatmap", 1), ("heatmap", 0), ("gate", 1), ("gate", 0))
MAX_SAMPLES = 6


def sample_rows(scores: pd.DataFrame, count: int = MAX_SAMPLES) -> list[int]:
    """Up to ``count`` row positions covering both routes and both labels, hardest first.

    The (route, label) cells are visited in turn in the order of :data:`SAMPLE_CELLS`
    (heatmap/anomalous, heatmap/normal, gate/anomalous, gate/normal), one image from each per
    round. Inside a cell, anomalous images come lowest final score first and normal images
    highest first (those nearest to being misjudged), ties broken by ``sample_id``.
    """
    if "route" not in scores.columns:
        raise CacheError("not a cascade score table: no 'route' column")
    frame = scores.reset_index(drop=True)
    labels = frame["label"].astype(int).to_numpy()
    score = frame["score"].to_numpy(dtype=float)
    frame = frame.assign(_pos=np.arange(len(frame)), _key=np.where(labels == 1, score, -score))
    queues = []
    for route, label in SAMPLE_CELLS:
        cell = frame[(frame["route"] == route) & (labels == label)]
        queues.append(cell.sort_values(["_key", "sample_id"], kind="stable")["_pos"].tolist())
    picks: list[int] = []
    while len(picks) < count and any(queues):
        for queue in queues:
            if queue and len(picks) < count:
                picks.append(int(queue.pop(0)))
    return picks


def _row_text(sample: pd.Series, threshold: float) -> str:
    short = str(sample["sample_id"]).removeprefix(f"{sample.get('category', '')}/")
    final = float(sample["score"])
    call = ""
    if threshold is not None and math.isfinite(float(threshold)):
        call = " -> anomalous" if final >= float(threshold) else " -> normal"
    p_gate = sample.get("p_gate", float("nan"))
    label = int(sample["label"])
    defect = sample.get("defect_type")
    return "\n".join(
        [
            short,
            f"p_gate={float(p_gate):.3f}",
            f"route={sample['route']}",
            f"final={final:.3f}{call}",
            f"label={label}" + (f" ({defect})" if isinstance(defect, str) else ""),
        ]
    )


def sample_figure(
    title: str,
    scores: pd.DataFrame,
    picks: list[int],
    manifest: pd.DataFrame,
    geometry: Geometry,
    threshold: float,
    heatmap: tuple[str, pd.DataFrame, np.ndarray] | None = None,
) -> Figure | None:
    """Rows: image | routing text | overlay of the heatmap method's map (aligned by sample id).

    ``heatmap`` is (method name, its score table, its maps) or None (then image and text only).
    One colour scale for all rows: min to max of the heatmap method's maps of the category.
    """
    if not picks:
        return None
    where, maps, vmin, vmax = {}, None, 0.0, 0.0
    if heatmap is not None:
        name, table_h, maps = heatmap
        if len(table_h) != len(maps):
            raise CacheError(f"{title}: {name} has {len(table_h)} scores but {len(maps)} maps")
        where = {sid: i for i, sid in enumerate(table_h["sample_id"])}
        vmin, vmax = map_range(maps)
    tiles, texts = [], []
    for i in picks:
        sample = scores.iloc[i]
        sid = sample["sample_id"]
        image = geometry.image(load_image(manifest.loc[sid, "image_path"]))
        row = [image.astype(np.float32) / 255.0, np.ones(image.shape, np.float32)]
        if maps is not None:
            if sid not in where:
                raise CacheError(f"{title}: {sid} is not in the heatmap method's scores")
            amap = np.asarray(maps[where[sid]], dtype=np.float32)
            if amap.shape != image.shape[:2]:
                raise CacheError(f"{title}: map {amap.shape} vs image {image.shape[:2]} of {sid}")
            row.append(heat_tiles(image, amap, vmin, vmax)[2])
        tiles.append(row)
        texts.append(_row_text(sample, threshold))
    grid = mosaic(tiles)
    height, width = grid.shape[:2]
    columns = ["image", "routing"] + ([f"{heatmap[0]} overlay"] if maps is not None else [])
    fig_width = 1.8 * len(columns)
    fig = new_figure(fig_width, 0.45 + fig_width * 0.96 * height / width, layout=None)
    ax = fig.add_axes((0.02, 0.01, 0.96, 0.97 - 0.4 / fig.get_figheight()))
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    step_x, step_y = (width + GAP) / len(columns), (height + GAP) / len(tiles)
    for c, name in enumerate(columns):
        ax.text((c + 0.5) * step_x, -3, name, ha="center", va="bottom", fontsize=7)
    for r, text in enumerate(texts):
        ax.text(step_x + 0.04 * step_x, (r + 0.5) * step_y, text, ha="left", va="center",
                fontsize=6, family="monospace")  # fmt: skip
    fig.suptitle(title, fontsize=8, y=0.995, va="top")
    return fig
