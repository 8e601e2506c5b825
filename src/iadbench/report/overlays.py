"""Anomaly-map overlays for the highest- and lowest-scoring test images of a category.

Rows are images; columns are image | map | overlay | ground truth. The images go through the
same :class:`Geometry` as feature extraction and the masks through the same one as evaluation,
so all four panels are pixel-aligned with the map. One colour scale (the min and max of all of
the category's maps) is shared by the rows, so a hot top row and a cold bottom row compare.

The grid is composed as one RGB mosaic and drawn on a single axes: a figure with an axes per
panel costs ten times more to lay out, and the report makes one grid per (method, category).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from iadbench.data.images import Geometry, load_image, load_mask
from iadbench.errors import CacheError

from .figures import new_figure

COLUMNS = ("image", "anomaly map", "overlay", "ground truth")
GAP = 4  # white pixels between tiles
ALPHA = 0.45  # weight of the map in the overlay


def extremes(scores: np.ndarray, per_end: int) -> tuple[list[int], list[int]]:
    """Indices of the ``per_end`` highest and of the ``per_end`` lowest scores, both descending.

    An image never appears twice: with fewer than ``2 * per_end`` images the bottom list shrinks.
    """
    order = [int(i) for i in np.argsort(-np.asarray(scores, dtype=float), kind="stable")]
    top = order[:per_end]
    bottom = [i for i in order[-per_end:] if i not in top]
    return top, bottom


def map_range(maps: np.ndarray) -> tuple[float, float]:
    """The shared colour scale of a category's maps: their min and max."""
    return float(np.min(maps)), float(np.max(maps))


def heat_tiles(image: np.ndarray, amap: np.ndarray, vmin: float, vmax: float):
    """RGB float tiles (image, coloured map, overlay) on the ``vmin``..``vmax`` scale."""
    rgb = image.astype(np.float32) / 255.0
    scaled = np.clip((amap - vmin) / (vmax - vmin), 0, 1) if vmax > vmin else np.zeros_like(amap)
    heat = colormaps["jet"](scaled)[..., :3].astype(np.float32)
    return rgb, heat, (1 - ALPHA) * rgb + ALPHA * heat


def _tiles(image: np.ndarray, amap: np.ndarray, mask: np.ndarray, vmin: float, vmax: float):
    """The four RGB float tiles of one row."""
    rgb, heat, overlay = heat_tiles(image, amap, vmin, vmax)
    truth = np.repeat(mask[..., None].astype(np.float32), 3, axis=2)
    return [rgb, heat, overlay, truth]


def mosaic(rows: list[list[np.ndarray]]) -> np.ndarray:
    """Tiles of equal size on a white background with ``GAP`` pixels between them."""
    h, w = rows[0][0].shape[:2]
    out = np.ones((len(rows) * (h + GAP) - GAP, len(rows[0]) * (w + GAP) - GAP, 3), np.float32)
    for r, tiles in enumerate(rows):
        for c, tile in enumerate(tiles):
            out[r * (h + GAP) : r * (h + GAP) + h, c * (w + GAP) : c * (w + GAP) + w] = tile
    return out


def overlay_figure(
    title: str,
    table: pd.DataFrame,
    maps: np.ndarray,
    manifest: pd.DataFrame,
    geometry: Geometry,
    per_end: int = 2,
    mask_threshold: int = 0,
) -> Figure:
    """The overlay grid for one (dataset, method, category).

    ``table`` is the category's ``scores.parquet`` (row i <-> ``maps[i]``); ``manifest`` is
    indexed by ``sample_id`` and holds ``image_path`` and ``mask_path``; mask pixels above
    ``mask_threshold`` are defect, as in the dataset's config.
    """
    if len(table) != len(maps):
        raise CacheError(f"{title}: {len(table)} scores but {len(maps)} maps")
    top, bottom = extremes(table["score"].to_numpy(), per_end)
    vmin, vmax = map_range(maps)
    rows, labels = [], []
    for i in top + bottom:
        sample = table.iloc[i]
        info = manifest.loc[sample["sample_id"]]
        image = geometry.image(load_image(info["image_path"]))
        mask_path = info.get("mask_path")
        mask = (
            geometry.mask(load_mask(mask_path, mask_threshold))
            if isinstance(mask_path, str)
            else np.zeros(image.shape[:2], dtype=bool)
        )
        amap = np.asarray(maps[i], dtype=np.float32)
        if amap.shape != image.shape[:2]:
            raise CacheError(f"{title}: map {amap.shape} vs image {image.shape[:2]} of {info.name}")
        rows.append(_tiles(image, amap, mask, vmin, vmax))
        rank = "top" if len(labels) < len(top) else "bottom"
        short = str(info.name).removeprefix(f"{sample['category']}/")
        labels.append(f"{rank}\n{short}\n{sample['defect_type']}, score {sample['score']:.3g}")
    grid = mosaic(rows)
    height, width = grid.shape[:2]
    fig = new_figure(6.4, 0.6 + 6.4 * 0.76 * height / width, layout=None)
    ax = fig.add_axes((0.22, 0.02, 0.76, 0.96 - 0.45 / fig.get_figheight()))
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    step_x, step_y = (width + GAP) / len(COLUMNS), (height + GAP) / len(rows)
    for c, name in enumerate(COLUMNS):
        ax.text((c + 0.5) * step_x, -3, name, ha="center", va="bottom", fontsize=8)
    for r, label in enumerate(labels):
        ax.text(-6, (r + 0.5) * step_y, label, ha="right", va="center", fontsize=6)
    fig.suptitle(title, fontsize=9, y=0.995, va="top")
    return fig
