"""Image and mask reading plus the geometric transform shared by features and evaluation.

The same :class:`Geometry` is applied to images (before the backbone) and to ground-truth masks
(before metrics), so maps and masks are always pixel-aligned at the evaluation resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from iadbench.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _open(path: str | Path) -> Image.Image:
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty (0 bytes)")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"cannot decode image ({exc})") from exc
    return img


def load_image(path: str | Path) -> np.ndarray:
    """Read an image as uint8 RGB (H, W, 3); grayscale and palette images become 3-channel."""
    img = _open(path)
    if img.mode in ("I;16", "I;16B", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = np.zeros_like(arr) if hi == lo else (arr - lo) / (hi - lo) * 255.0
        img = Image.fromarray(arr.astype(np.uint8))
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def load_mask(path: str | Path, threshold: int = 0) -> np.ndarray:
    """Read a ground-truth mask as bool (H, W): pixels above ``threshold`` are defect."""
    img = _open(path)
    arr = np.asarray(img.convert("L") if img.mode not in ("L", "1", "I", "I;16") else img)
    if arr.ndim != 2:
        raise DataError(path, f"mask must be single-channel, got shape {arr.shape}")
    return arr > threshold


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) from the file header, without decoding pixels."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file does not exist")
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(path, f"cannot read image header ({exc})") from exc
    return height, width


@dataclass(frozen=True)
class Geometry:
    """Square resize to ``resize`` then centre crop to ``crop`` (the PatchCore/PaDiM protocol)."""

    resize: int = 256
    crop: int = 224

    def __post_init__(self) -> None:
        if self.crop > self.resize or self.crop <= 0:
            raise ValueError(f"crop ({self.crop}) must be in 1..resize ({self.resize})")

    def _crop_box(self) -> tuple[int, int, int, int]:
        off = (self.resize - self.crop) // 2
        return off, off, off + self.crop, off + self.crop

    def image(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) -> uint8 (crop, crop, 3), bilinear with antialiasing."""
        img = Image.fromarray(rgb).resize((self.resize, self.resize), Image.BILINEAR)
        return np.asarray(img.crop(self._crop_box()))

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """bool (H, W) -> bool (crop, crop), nearest-neighbour so labels stay exact."""
        img = Image.fromarray(mask.astype(np.uint8) * 255).resize(
            (self.resize, self.resize), Image.NEAREST
        )
        return np.asarray(img.crop(self._crop_box())) > 127
