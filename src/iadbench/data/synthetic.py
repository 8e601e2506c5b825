"""Synthetic anomalies made from normal images: named recipes for training a gate.

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

- **Perlin** (:func:`perlin`, DRAEM, Zavrtanik et al., ICCV 2021): a gradient-noise field at
  random lattice scales 2^0..2^6 per axis, thresholded at 0.5 (the mask), inside which a
  colour-augmented texture is blended as ``beta * image + (1 - beta) * texture`` with ``beta``
  uniform in [0, 0.8]. The texture source is a normal image of the category or an image of a
  user folder (never a downloaded texture set).
- **NSA** (:func:`nsa`, natural synthetic anomalies, Schlüter et al., ECCV 2022): a rectangle
  of a source image (another normal image) pasted at a random place by Poisson image editing
  (OpenCV's ``seamlessClone``), so the patch keeps its gradients and takes the target's
  colours at its border: no sharp seam for the gate to learn instead of the defect.

Every transform returns ``(image, mask)``: a new uint8 (H, W, 3) image (the input is never
changed) and a bool (H, W) mask of the region it may change; pixels outside it are the input's,
bit for bit. :func:`synthesize` picks the recipe by name (:data:`SYNTHETIC_MODES`);
``"cutpaste_mixed"`` tosses a fair coin between CutPaste and Scar (what ``mixed`` meant before
the Perlin and NSA recipes), ``"mixed"`` draws uniformly among the four recipes. Every random
choice comes from the ``numpy.random.Generator`` passed in, so a seed fixes the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from iadbench.errors import ConfigError

RECIPES = ("cutpaste", "scar", "perlin", "nsa")
# The recipes, and the draws among them: cutpaste_mixed = CutPaste or Scar, mixed = any recipe.
SYNTHETIC_MODES = (*RECIPES, "cutpaste_mixed", "mixed")
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


def _fade(t: np.ndarray) -> np.ndarray:
    """Perlin's quintic interpolation weight 6t^5 - 15t^4 + 10t^3 (smooth at the lattice)."""
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def perlin_noise(
    height: int, width: int, cells: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """2-D gradient (Perlin) noise in about [-1, 1] on a ``cells = (rows, columns)`` lattice.

    One random unit gradient per lattice corner; each pixel (sampled at its centre) takes the
    quintic-weighted blend of the four corners' dot products with its offsets. Random draws: the
    (rows + 1) x (columns + 1) gradient angles.
    """
    rows, cols = cells
    angles = rng.uniform(0.0, 2.0 * math.pi, size=(rows + 1, cols + 1))
    gy, gx = np.sin(angles), np.cos(angles)
    ys = (np.arange(height) + 0.5) * rows / height
    xs = (np.arange(width) + 0.5) * cols / width
    iy, ix = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = (ys - iy)[:, None], (xs - ix)[None, :]
    iy, ix = iy[:, None], ix[None, :]

    def corner(dy: int, dx: int) -> np.ndarray:
        return gy[iy + dy, ix + dx] * (fy - dy) + gx[iy + dy, ix + dx] * (fx - dx)

    wy, wx = _fade(fy), _fade(fx)
    top = corner(0, 0) * (1 - wx) + corner(0, 1) * wx
    bottom = corner(1, 0) * (1 - wx) + corner(1, 1) * wx
    return math.sqrt(2.0) * (top * (1 - wy) + bottom * wy)


def _augment_texture(texture: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Three of DRAEM's colour augmentations, drawn without repetition, applied in draw order.

    DRAEM augments its texture so the blended region differs in colour statistics from the
    image; with a normal image of the same category as the texture this is what makes the
    anomaly visible. Random draws: the three operations, then one parameter per operation.
    """
    operations = ("gamma", "brightness", "hue", "solarize", "posterize", "invert", "equalize")
    chosen = rng.choice(len(operations), size=3, replace=False)
    picture = Image.fromarray(texture)
    for k in chosen:
        name = operations[int(k)]
        if name == "gamma":
            gamma = rng.uniform(0.5, 2.0)
            lut = [round(255 * (v / 255) ** gamma) for v in range(256)] * 3
            picture = picture.point(lut)
        elif name == "brightness":
            picture = ImageEnhance.Brightness(picture).enhance(float(rng.uniform(0.6, 1.4)))
        elif name == "hue":
            h, s, v = picture.convert("HSV").split()
            shift = int(rng.integers(-64, 65))
            h = Image.fromarray(((np.asarray(h, dtype=np.int16) + shift) % 256).astype(np.uint8))
            picture = Image.merge("HSV", (h, s, v)).convert("RGB")
        elif name == "solarize":
            picture = ImageOps.solarize(picture, int(rng.integers(32, 224)))
        elif name == "posterize":
            picture = ImageOps.posterize(picture, int(rng.integers(2, 5)))
        elif name == "invert":
            picture = ImageOps.invert(picture)
        else:
            picture = ImageOps.equalize(picture)
    return np.asarray(picture.convert("RGB"), dtype=np.uint8)


def _resized(source: np.ndarray, height: int, width: int) -> np.ndarray:
    """A uint8 RGB source image at (height, width) (bilinear), checked like the target."""
    _check_image(source)
    if source.shape[:2] == (height, width):
        return source
    picture = Image.fromarray(source).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(picture, dtype=np.uint8)


def perlin(
    image: np.ndarray,
    rng: np.random.Generator,
    texture: np.ndarray | None = None,
    *,
    scale: tuple[int, int] = (0, 6),
    threshold: float = 0.5,
    beta: tuple[float, float] = (0.0, 0.8),
    area: tuple[float, float] = (0.005, 0.5),
) -> tuple[np.ndarray, np.ndarray]:
    """DRAEM's Perlin-noise anomaly: a noise blob blended with an augmented texture.

    The lattice has 2^a x 2^b cells, ``a`` and ``b`` uniform integers in ``scale``; the mask is
    noise > ``threshold``. ``area`` bounds the mask's share of the image: when the threshold
    gives fewer (more) pixels, the mask is the ``ceil(low * H * W)`` (``floor(high * H * W)``)
    pixels of highest noise instead, so a low-frequency draw never yields an empty or a
    whole-image mask (DRAEM redraws the whole sample instead; this keeps one draw per call).
    Inside the mask the output is ``beta * image + (1 - beta) * texture`` with ``beta`` uniform in
    ``beta``; the texture is ``texture`` (resized to the image, bilinear; the image itself when
    None) after three random colour augmentations. DRAEM also rotates the noise field; that is
    left out (it changes the blob's orientation statistics, not its kind).

    Random draws, in order: the two scale exponents, the gradients, ``beta``, the augmentations.
    """
    height, width = _check_image(image)
    _check_rng(rng)
    low_scale, high_scale = _int_pair_from_zero("perlin scale", scale)
    beta = _pair("perlin beta", beta)
    if not (0.0 <= beta[0] and beta[1] <= 1.0):
        raise ConfigError(f"perlin beta must lie in [0, 1], got {beta!r}")
    area = _pair("perlin area", area)
    if not (0.0 < area[0] and area[1] < 1.0):
        raise ConfigError(f"perlin area must be fractions in (0, 1), got {area!r}")
    source = _resized(image if texture is None else texture, height, width)

    rows = 2 ** int(rng.integers(low_scale, high_scale + 1))
    cols = 2 ** int(rng.integers(low_scale, high_scale + 1))
    noise = perlin_noise(height, width, (rows, cols), rng)
    mask = noise > float(threshold)
    n = height * width
    fewest, most = max(1, math.ceil(area[0] * n)), max(1, math.floor(area[1] * n))
    count = int(mask.sum())
    if not fewest <= count <= most:
        keep = min(max(count, fewest), most)
        order = np.argsort(-noise, axis=None, kind="stable")[:keep]
        mask = np.zeros(n, dtype=bool)
        mask[order] = True
        mask = mask.reshape(height, width)
    b = float(rng.uniform(*beta))
    augmented = _augment_texture(source, rng).astype(np.float64)
    blended = b * image.astype(np.float64) + (1.0 - b) * augmented
    out = image.copy()
    out[mask] = np.clip(np.rint(blended[mask]), 0, 255).astype(np.uint8)
    return out, mask


def _int_pair_from_zero(name: str, bounds: object) -> tuple[int, int]:
    """A (low, high) pair of whole numbers >= 0 with low <= high (lattice exponents)."""
    low, high = _pair(name, bounds)
    if low != int(low) or high != int(high) or low < 0 or high > 10:
        raise ConfigError(f"{name} must be whole exponents in [0, 10], got {bounds!r}")
    return int(low), int(high)


def nsa(
    image: np.ndarray,
    rng: np.random.Generator,
    source: np.ndarray | None = None,
    *,
    area: tuple[float, float] = (0.02, 0.15),
    aspect: tuple[float, float] = (0.3, 3.3),
    clone: str = "normal",
) -> tuple[np.ndarray, np.ndarray]:
    """NSA's natural synthetic anomaly: a source rectangle Poisson-blended into the image.

    A rectangle (area fraction uniform in ``area``, aspect log-uniform in ``aspect``, drawn as in
    :func:`cutpaste`) is cut from ``source`` (resized to the image; the image itself when None)
    and blended at a random place of the image by ``cv2.seamlessClone`` (``clone``: ``normal``
    keeps the patch's gradients, ``mixed`` the stronger of patch and image gradient per pixel).
    The pasted rectangle keeps a 1-pixel margin from the image border, which Poisson editing
    needs for its boundary condition. The mask is that rectangle; the output equals the input
    outside it.

    Random draws, in order: area, aspect, cut position, paste position.
    """
    import cv2  # only this recipe needs OpenCV

    height, width = _check_image(image)
    _check_rng(rng)
    if height < 4 or width < 4:
        raise ConfigError(f"nsa needs an image of at least 4x4, got {height}x{width}")
    area = _pair("nsa area", area)
    if not (0.0 < area[0] and area[1] < 1.0):
        raise ConfigError(f"nsa area must be fractions in (0, 1), got {area!r}")
    aspect = _pair("nsa aspect", aspect)
    if aspect[0] <= 0.0:
        raise ConfigError(f"nsa aspect ratios must be positive, got {aspect!r}")
    modes = {"normal": cv2.NORMAL_CLONE, "mixed": cv2.MIXED_CLONE}
    if clone not in modes:
        raise ConfigError(f"nsa clone must be one of {', '.join(modes)}, got {clone!r}")
    donor = _resized(image if source is None else source, height, width)

    inner_h, inner_w = height - 2, width - 2  # the paste keeps a 1-pixel margin
    h, w = _rectangle_size(inner_h, inner_w, rng, area, aspect)
    cut = int(rng.integers((height - h + 1) * (width - w + 1)))
    cy, cx = divmod(cut, width - w + 1)
    paste = int(rng.integers((inner_h - h + 1) * (inner_w - w + 1)))
    py, px = divmod(paste, inner_w - w + 1)
    py, px = py + 1, px + 1
    patch = donor[cy : cy + h, cx : cx + w]
    # Padded by 2 with the mask one pixel inside the padding: OpenCV then solves exactly the
    # h x w rectangle (its mask's outermost ring is the fixed boundary).
    padded = np.ascontiguousarray(np.pad(patch, ((2, 2), (2, 2), (0, 0)), mode="edge"))
    region = np.zeros(padded.shape[:2], dtype=np.uint8)
    region[1:-1, 1:-1] = 255
    centre = (px - 1 + (w + 2) // 2, py - 1 + (h + 2) // 2)
    blended = cv2.seamlessClone(padded, np.ascontiguousarray(image), region, centre, modes[clone])
    mask = np.zeros((height, width), dtype=bool)
    mask[py : py + h, px : px + w] = True
    out = image.copy()
    out[mask] = blended[mask]
    return out, mask


def draw_recipe(rng: np.random.Generator, mode: str) -> str:
    """The recipe one call of :func:`synthesize` uses: ``mode`` itself, or one drawn for it.

    ``cutpaste_mixed`` draws one number (below 1/2: CutPaste, else Scar); ``mixed`` draws one
    integer uniformly among :data:`RECIPES`.
    """
    if mode not in SYNTHETIC_MODES:
        raise ConfigError(
            f"synthetic mode must be one of {', '.join(SYNTHETIC_MODES)}, got {mode!r}"
        )
    _check_rng(rng)
    if mode == "cutpaste_mixed":
        return "cutpaste" if rng.random() < 0.5 else "scar"
    if mode == "mixed":
        return RECIPES[int(rng.integers(len(RECIPES)))]
    return mode


def synthesize(
    image: np.ndarray,
    rng: np.random.Generator,
    mode: str,
    pool: Sequence[np.ndarray] | None = None,
    textures: Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic anomaly of the named recipe or draw, with each recipe's default settings.

    ``pool``: other normal images of the category, from which NSA draws its source (and Perlin
    its texture unless ``textures`` is given); ``textures``: a user folder's images for Perlin.
    Without them both use the image itself. Random draws: the recipe (for the two draws), then
    the pool / texture index (Perlin and NSA, only when a pool is given), then the recipe's own.
    """
    recipe = draw_recipe(rng, mode)
    if recipe == "cutpaste":
        return cutpaste(image, rng)
    if recipe == "scar":
        return cutpaste_scar(image, rng)
    choices = textures if (recipe == "perlin" and textures) else pool
    other = choices[int(rng.integers(len(choices)))] if choices else None
    if recipe == "perlin":
        return perlin(image, rng, other)
    return nsa(image, rng, other)


TEXTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def texture_images(folder: str | Path) -> list[np.ndarray]:
    """The images of a user's texture folder (sorted by name), as uint8 RGB arrays.

    The Perlin recipe's alternative texture source to the category's own normal images; an
    absent folder or one without images is an error naming it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"texture_dir {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in TEXTURE_SUFFIXES)
    if not files:
        raise ConfigError(f"texture_dir {folder}: no images ({', '.join(TEXTURE_SUFFIXES)})")
    out = []
    for path in files:
        with Image.open(path) as picture:
            out.append(np.asarray(picture.convert("RGB"), dtype=np.uint8))
    return out
