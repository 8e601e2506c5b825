"""Synthetic anomalies made from normal images: CutPaste and CutPaste-Scar (Li et al., CVPR 2021).

The classifier gate needs an anomaly class, but most benchmarks only give normal training
images; these transforms turn a normal image into a plausible local defect so the gate can be
trained as a two-class (normal vs. synthetic anomaly) classifier.

- **CutPaste** (:func:`cutpaste`): copy a random rectangle whose area is 2-15 % of the image
  (uniform in that range) and whose aspect ratio w/h is log-uniform in [0.3, 3.3], optionally
  jitter its brightness, contrast, saturation and hue by a small ``jitter`` strength (0 turns the
  jitter off), and paste it at another random location of the same image. The rectangle lies
  fully inside the image where it is cut and where it is pasted.
- **CutPaste-Scar** (:func:`cutpaste_scar`): a thin rectangle of width 2-16 px and length
  10-25 px (uniform integers), rotated by an angle uniform in [-45, 45] degrees, filled with one
  random RGB colour and pasted at a random location, fully inside the image.

Both return ``(image, mask)``: a new uint8 (H, W, 3) image (the input is never changed) and a
bool (H, W) mask of the pasted region. :func:`synthesize` picks the transform by name
(:data:`SYNTHETIC_MODES`); ``"mixed"`` tosses a fair coin per call. Every random choice comes
from the ``numpy.random.Generator`` passed in, so a seed fixes the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
from PIL import Image, ImageEnhance

from iadbench.errors import ConfigError

SYNTHETIC_MODES = ("cutpaste", "scar", "mixed")
MAX_JITTER = 0.5  # hue shift is a fraction of the colour circle; beyond 0.5 it wraps around


@dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle of pixels: top-left corner (``y``, ``x``) and its size."""

    y: int
    x: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """Index an (H, W, ...) array with this box."""
        return slice(self.y, self.y + self.height), slice(self.x, self.x + self.width)


def _check_image(image: np.ndarray) -> tuple[int, int]:
    """The transforms work on uint8 RGB images with room for a second patch location."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ConfigError(f"synthetic anomalies need a uint8 numpy image, got {_describe(image)}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ConfigError(f"synthetic anomalies need an (H, W, 3) image, got shape {image.shape}")
    height, width = image.shape[:2]
    if height < 2 or width < 2:
        raise ConfigError(
            f"synthetic anomalies need an image of at least 2x2, got {height}x{width}"
        )
    return height, width


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"array of {value.dtype}"
    return type(value).__name__


def _check_rng(rng: object) -> None:
    """Only a Generator keeps results reproducible from one seed (no global numpy state)."""
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
            f"got {type(rng).__name__}"
        )


def _pair(name: str, bounds: object) -> tuple[float, float]:
    """A (low, high) pair of finite numbers with low <= high."""
    try:
        low, high = (float(v) for v in bounds)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a (low, high) pair of numbers, got {bounds!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"{name} bounds must be finite, got {bounds!r}")
    if low > high:
        raise ConfigError(f"{name} low bound must not exceed the high bound, got {bounds!r}")
    return low, high


def _int_pair(name: str, bounds: object) -> tuple[int, int]:
    """A (low, high) pair of whole numbers >= 1 with low <= high (pixel sizes)."""
    low, high = _pair(name, bounds)
    if low != int(low) or high != int(high):
        raise ConfigError(f"{name} bounds must be whole pixels, got {bounds!r}")
    if low < 1:
        raise ConfigError(f"{name} bounds must be at least 1 pixel, got {bounds!r}")
    return int(low), int(high)


def _jitter(patch: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness, contrast and saturation factors in 1 +- strength, hue shift in +- strength.

    Applied in that fixed order, through PIL's ImageEnhance and HSV conversion; the hue shift is
    a fraction of the colour circle.
    """
    brightness, contrast, saturation = rng.uniform(1.0 - strength, 1.0 + strength, size=3)
    hue = rng.uniform(-strength, strength)
    picture = Image.fromarray(patch)
    picture = ImageEnhance.Brightness(picture).enhance(float(brightness))
    picture = ImageEnhance.Contrast(picture).enhance(float(contrast))
    picture = ImageEnhance.Color(picture).enhance(float(saturation))
    h, s, v = picture.convert("HSV").split()
    shifted = (np.asarray(h, dtype=np.int16) + int(round(hue * 256))) % 256
    h = Image.fromarray(shifted.astype(np.uint8))
    return np.asarray(Image.merge("HSV", (h, s, v)).convert("RGB"), dtype=np.uint8)


def _rectangle_size(
    height: int,
    width: int,
    rng: np.random.Generator,
    area: tuple[float, float],
    aspect: tuple[float, float],
) -> tuple[int, int]:
    """Draw (h, w) of the CutPaste rectangle: area fraction uniform, aspect log-uniform.

    The aspect range is narrowed to the ratios that fit the image at the drawn area; that only
    happens for strongly elongated images (never for a square one with the default bounds). If
    no ratio in range fits, the rectangle spans the image's short side at the nearest bound
    ratio: the aspect bound holds, the area comes out below the drawn one.
    """
    target = rng.uniform(*area) * height * width
    if target / height**2 > aspect[1]:  # too short even at the widest ratio: full height
        h, w = height, math.floor(height * aspect[1])
    elif width**2 / target < aspect[0]:  # too narrow even at the tallest ratio: full width
        h, w = math.floor(width / aspect[0]), width
    else:
        low = max(aspect[0], target / height**2)
        high = min(aspect[1], width**2 / target)
        ratio = math.exp(rng.uniform(math.log(low), math.log(high)))
        h, w = round(math.sqrt(target / ratio)), round(math.sqrt(target * ratio))
    h, w = min(height, max(1, h)), min(width, max(1, w))
    if h == height and w == width:  # rounding on a tiny image: leave room for a second position
        w -= 1
    return h, w


def _cut_and_paste_boxes(
    height: int, width: int, h: int, w: int, rng: np.random.Generator
) -> tuple[Box, Box]:
    """Uniform cut position, then a uniform paste position among all the *other* positions.

    Excluding the cut position itself keeps the paste from being a no-op; otherwise the two are
    independent.
    """
    columns = width - w + 1
    positions = (height - h + 1) * columns  # >= 2: the rectangle is never the whole image
    cut = int(rng.integers(positions))
    paste = int(rng.integers(positions - 1))
    if paste >= cut:
        paste += 1
    (cy, cx), (py, px) = divmod(cut, columns), divmod(paste, columns)
    return Box(cy, cx, h, w), Box(py, px, h, w)


@overload
def cutpaste(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    area: tuple[float, float] = ...,
    aspect: tuple[float, float] = ...,
    jitter: float = ...,
    return_boxes: Literal[False] = ...,
) -> tuple[np.ndarray, np.ndarray]: ...


@overload
def cutpaste(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    area: tuple[float, float] = ...,
    aspect: tuple[float, float] = ...,
    jitter: float = ...,
    return_boxes: Literal[True],
) -> tuple[np.ndarray, np.ndarray, tuple[Box, Box]]: ...


def cutpaste(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    area: tuple[float, float] = (0.02, 0.15),
    aspect: tuple[float, float] = (0.3, 3.3),
    jitter: float = 0.1,
    return_boxes: bool = False,
):
    """CutPaste: copy a rectangle of the image, optionally colour-jitter it, paste it elsewhere.

    ``area`` bounds the rectangle's area as a fraction of the image (uniform draw), ``aspect``
    its width/height ratio (log-uniform draw), ``jitter`` the colour jitter strength in
    [0, 0.5] (0: the pasted pixels are an exact copy). The cut region itself is left as it was.

    Returns ``(image, mask)``, the mask being the pasted rectangle (a pixel in it can keep its
    value by chance, e.g. in a flat region). With ``return_boxes=True`` it returns
    ``(image, mask, (cut, paste))`` with the two :class:`Box` es, for checks and debugging.
    Random draws, in order: area, aspect (not drawn when no ratio fits an elongated image), cut
    position, paste position, then the four jitter values (none when ``jitter`` is 0), so a seed
    gives the same boxes whatever the jitter.
    """
    height, width = _check_image(image)
    _check_rng(rng)
    area = _pair("cutpaste area", area)
    if not (0.0 < area[0] and area[1] < 1.0):
        raise ConfigError(f"cutpaste area must be fractions in (0, 1), got {area!r}")
    aspect = _pair("cutpaste aspect", aspect)
    if aspect[0] <= 0.0:
        raise ConfigError(f"cutpaste aspect ratios must be positive, got {aspect!r}")
    try:
        jitter = float(jitter)
    except (TypeError, ValueError):
        raise ConfigError(f"cutpaste jitter must be a number, got {jitter!r}") from None
    if not 0.0 <= jitter <= MAX_JITTER:
        raise ConfigError(f"cutpaste jitter must lie in [0, {MAX_JITTER}], got {jitter!r}")

    h, w = _rectangle_size(height, width, rng, area, aspect)
    cut, paste = _cut_and_paste_boxes(height, width, h, w, rng)
    patch = image[cut.slices].copy()
    if jitter > 0.0:
        patch = _jitter(patch, rng, jitter)
    out = image.copy()
    out[paste.slices] = patch
    mask = np.zeros((height, width), dtype=bool)
    mask[paste.slices] = True
    if return_boxes:
        return out, mask, (cut, paste)
    return out, mask


def _scar_bounds(
    height: int, width: int, widths: tuple[int, int], lengths: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Shrink the scar size bounds proportionally when the largest scar might not fit.

    The largest scar, at any angle, fits in a square of its diagonal plus a 2-pixel margin for
    rasterisation; when the image's short side is smaller than that, every bound is multiplied by
    short side / that size (rounded down, at least 1 pixel).
    """
    needed = math.hypot(widths[1], lengths[1]) + 2.0
    short = min(height, width)
    if short >= needed:
        return widths, lengths
    scale = short / needed

    def shrink(bounds: tuple[int, int]) -> tuple[int, int]:
        return max(1, math.floor(bounds[0] * scale)), max(1, math.floor(bounds[1] * scale))

    return shrink(widths), shrink(lengths)


def _scar_mask(scar_width: int, scar_length: int, degrees: float) -> np.ndarray:
    """Rasterise a rotated rectangle as a tight bool mask.

    A ``scar_length`` x ``scar_width`` block is rotated with PIL's ``Image.rotate(expand=True)``
    and nearest resampling, which keeps the pixel count close to width x length (a polygon fill
    would add its outline and inflate thin scars). At 0 degrees the mask is exactly that block;
    positive angles turn it anticlockwise, as PIL does.
    """
    block = Image.new("L", (scar_width, scar_length), 255)
    turned = block.rotate(degrees, resample=Image.Resampling.NEAREST, expand=True, fillcolor=0)
    mask = np.asarray(turned) > 0
    if not mask.any():  # not seen for any size or angle; keep the scar non-empty regardless
        return np.ones((scar_length, scar_width), dtype=bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def cutpaste_scar(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    width: tuple[int, int] = (2, 16),
    length: tuple[int, int] = (10, 25),
    angle: tuple[float, float] = (-45.0, 45.0),
) -> tuple[np.ndarray, np.ndarray]:
    """CutPaste-Scar: paste a thin, rotated, single-colour rectangle at a random location.

    ``width`` and ``length`` bound the scar's size in pixels (uniform integers, both ends
    included) before rotation, ``angle`` its rotation in degrees (uniform, anticlockwise). The
    scar mask is a block rotated by PIL's ``Image.rotate(expand=True)`` with nearest resampling,
    cropped to its pixels and placed fully inside the image.

    Small images: when the image's short side is under the largest scar's extent (its diagonal
    + 2 px, about 32 px with the defaults) all size bounds are scaled down by the same factor,
    short side / extent (rounded down, at least 1 px), so the scar still fits.

    Returns ``(image, mask)``; the mask holds exactly the scar's pixels, all of which get the
    scar colour. Random draws, in order: width, length, angle, colour, row, column.
    """
    height, image_width = _check_image(image)
    _check_rng(rng)
    widths = _int_pair("scar width", width)
    lengths = _int_pair("scar length", length)
    angles = _pair("scar angle", angle)
    widths, lengths = _scar_bounds(height, image_width, widths, lengths)

    scar_width = int(rng.integers(widths[0], widths[1] + 1))
    scar_length = int(rng.integers(lengths[0], lengths[1] + 1))
    degrees = float(rng.uniform(*angles))
    colour = rng.integers(0, 256, size=3).astype(np.uint8)
    shape = _scar_mask(scar_width, scar_length, degrees)
    rows, cols = shape.shape
    if rows > height or cols > image_width:  # scaled bounds make this unreachable; fail loudly
        raise ConfigError(f"a {rows}x{cols} scar does not fit a {height}x{image_width} image")
    y = int(rng.integers(0, height - rows + 1))
    x = int(rng.integers(0, image_width - cols + 1))

    mask = np.zeros((height, image_width), dtype=bool)
    mask[y : y + rows, x : x + cols] = shape
    out = image.copy()
    out[mask] = colour
    return out, mask


def synthesize(
    image: np.ndarray, rng: np.random.Generator, mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic anomaly of the named kind, with each transform's default settings.

    ``mode`` is one of :data:`SYNTHETIC_MODES`; ``"mixed"`` draws one number first and uses
    CutPaste when it is below 1/2, the scar otherwise.
    """
    if mode not in SYNTHETIC_MODES:
        raise ConfigError(
            f"synthetic mode must be one of {', '.join(SYNTHETIC_MODES)}, got {mode!r}"
        )
    _check_rng(rng)
    if mode == "mixed":
        mode = "cutpaste" if rng.random() < 0.5 else "scar"
    if mode == "cutpaste":
        return cutpaste(image, rng)
    return cutpaste_scar(image, rng)
