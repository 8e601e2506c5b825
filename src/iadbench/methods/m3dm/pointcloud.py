"""The pseudo point cloud of a weld run: its sensor log as a tiled depth map (numpy only).

The weld data has no 3D scans, so M3DM's point branch gets a surface made from the sensor CSV:
each of the six signals is scaled to [0, 1] with the TRAIN runs' minimum and maximum (so a level
shift of a defective run leaves that range instead of being normalised away), the six are
averaged into one signal, that signal is interpolated linearly on real time to ``size`` points,
and the result is tiled over ``size`` rows: the depth ``z[i, j] = s[j]`` with coordinates
``x = j / (size - 1)``, ``y = i / (size - 1)``. Points are row-major, so point ``i * size + j`` is
pixel ``(i, j)`` of the depth map, which is how the point features are laid back onto a grid.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from iadbench.data.media import SENSOR_SIGNALS, read_sensor, resample_sensor


def range_floor(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Max - min, floored: a channel constant over TRAIN (gas pressure often is) maps to 0
    instead of dividing by zero, and a deviation from it stays finite."""
    return np.maximum(high - low, 1e-3 * np.maximum(1.0, np.abs(high)))


def fit_minmax(paths: Iterable[str]) -> dict:
    """Per-channel minimum and maximum over every row of the TRAIN runs' sensor CSVs."""
    frames = [read_sensor(p)[list(SENSOR_SIGNALS)].to_numpy(np.float64) for p in paths]
    if not frames:
        raise ValueError("no TRAIN sensor files to take the min/max of")
    stacked = np.concatenate(frames)
    return {"min": stacked.min(0).tolist(), "max": stacked.max(0).tolist()}


def averaged_signal(frame: pd.DataFrame, stats: dict, size: int) -> np.ndarray:
    """float64 (size,): the min/max-scaled signals averaged, interpolated on real time.

    Scaling and averaging are affine and the interpolation linear, so scaling each channel,
    interpolating all six and averaging is the same signal as averaging first.
    """
    low, high = np.asarray(stats["min"]), np.asarray(stats["max"])
    scaled = frame.copy()
    values = (frame[list(SENSOR_SIGNALS)].to_numpy(np.float64) - low) / range_floor(low, high)
    scaled[list(SENSOR_SIGNALS)] = values
    return resample_sensor(scaled, size).astype(np.float64).mean(axis=1)


def tiled_cloud(signal: np.ndarray) -> np.ndarray:
    """float32 (size², 3) points ``(x, y, z)`` of the signal tiled over ``size`` rows."""
    size = len(signal)
    coords = np.arange(size, dtype=np.float64) / max(size - 1, 1)
    y, x = np.meshgrid(coords, coords, indexing="ij")
    z = np.broadcast_to(np.asarray(signal, dtype=np.float64)[None, :], (size, size))
    return np.stack([x, y, z], axis=-1).reshape(-1, 3).astype(np.float32)


def run_cloud(path: str, stats: dict, size: int) -> np.ndarray:
    """The pseudo point cloud of one run's sensor CSV."""
    return tiled_cloud(averaged_signal(read_sensor(path), stats, size))
