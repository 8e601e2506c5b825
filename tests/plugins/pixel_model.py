"""Implementation of :mod:`pixel_kind`: reads images through the manifest rows it is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from pixel_kind import PixelParams

from iadbench.io import save_json, save_npy
from iadbench.methods.base import Method, MethodInputs


def _gray(path: str, size: tuple[int, int]) -> np.ndarray:
    image = Image.open(path).convert("L").resize(size[::-1], Image.BILINEAR)
    return np.asarray(image, dtype=np.float32) / 255.0


class PixelDistance(Method):
    kind = "pixel"
    params_class = PixelParams
    SIZE = (32, 32)

    def fit(self, train: MethodInputs, state_dir: Path) -> dict:
        paths = sorted(train.index["image_path"])[: int(self.params.shots)]
        save_npy(Path(state_dir) / "mean.npy", np.mean([_gray(p, self.SIZE) for p in paths], 0))
        summary = {"references": len(paths)}
        save_json(Path(state_dir) / "state.json", summary)
        return summary

    def score(self, state_dir, inputs: MethodInputs, out_size):
        reference = None if state_dir is None else np.load(Path(state_dir) / "mean.npy")
        maps = []
        for path in inputs.index["image_path"]:
            gray = _gray(path, self.SIZE)
            distance = np.abs(gray - (gray.mean() if reference is None else reference))
            up = Image.fromarray(distance).resize(out_size[::-1], Image.BILINEAR)
            maps.append(np.asarray(up, dtype=np.float32))
        maps = np.stack(maps)
        return maps.max((1, 2)).astype(np.float64), maps
