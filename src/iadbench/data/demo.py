"""A small MVTec-AD-layout demo dataset generated from scikit-image's texture photographs.

Why: the pipeline needs a dataset that runs anywhere (tests, CI, a first try) without a multi-GB
download or a licence click-through, yet looks like real inspection data. scikit-image ships three
CC0 texture photographs (``brick``, ``grass``, ``gravel``, 512x512 grayscale); random crops of each
give the "good" images of one category, and synthetic defects drawn onto fresh crops give the
anomalies. Because the defects are drawn at the final resolution, every ground-truth mask is the
*exact* set of pixels the drawing touched: no annotation noise, no resize blur, and pixels outside a
mask are bit-identical to the clean image the defect was drawn on.

Everything is seeded per (seed, category, split/defect, index), so the same seed gives
byte-identical files and adding a category or images never changes the others. The tree is
written atomically.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from iadbench.io import atomic_dir

DEMO_CATEGORIES = ("brick", "grass", "gravel")
DEFECT_TYPES = ("scratch", "stain", "cut_paste", "hole")

# Mild fixed colour tint per category (RGB gains), so the images look like product photographs.
_TINTS = {
    "brick": (1.00, 0.86, 0.76),
    "grass": (0.86, 1.00, 0.74),
    "gravel": (0.94, 0.95, 1.00),
}
_STAIN_RGB = np.array([0.45, 0.29, 0.12])
_CROP_RANGE = (192, 256)  # crop side in pixels of the 512x512 photograph
_PATCH_CROP_RANGE = (80, 128)  # cut_paste source: about 2x zoomed in, so the patch stands out
_SPLIT_CODES = {"train": 0, "good": 1, **{d: 2 + i for i, d in enumerate(DEFECT_TYPES)}}

FloatImage = np.ndarray  # (S, S, 3) float64 in [0, 1]


@functools.cache
def _texture(category: str) -> np.ndarray:
    """The source photograph as float32 grayscale in [0, 1] (read from scikit-image's package)."""
    import skimage.data

    photo = getattr(skimage.data, category)().astype(np.float32) / 255.0
    photo.setflags(write=False)  # shared by every call through the cache
    return photo


def _rng(seed: int, category: str, kind: str, index: int) -> np.random.Generator:
    """Independent stream per sample: kind is 'train', 'good' (test) or a defect type."""
    if category not in DEMO_CATEGORIES:
        raise ValueError(f"unknown demo category {category!r}; choose from {DEMO_CATEGORIES}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    key = [seed, DEMO_CATEGORIES.index(category), _SPLIT_CODES[kind], index]
    return np.random.default_rng(np.random.SeedSequence(key))


def _to_uint8(img: FloatImage) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def _normal_image(
    category: str, rng: np.random.Generator, size: int, crop_range: tuple[int, int] = _CROP_RANGE
) -> FloatImage:
    """Random crop of the photograph, resized, flipped/rotated, jittered, tinted: (S, S, 3)."""
    tex = _texture(category)
    side = int(rng.integers(crop_range[0], crop_range[1] + 1))
    r0, c0 = (int(v) for v in rng.integers(0, tex.shape[0] - side + 1, size=2))
    crop = Image.fromarray(np.ascontiguousarray(tex[r0 : r0 + side, c0 : c0 + side]))  # mode "F"
    gray = np.asarray(crop.resize((size, size), Image.Resampling.LANCZOS), dtype=np.float64)
    gray = np.rot90(gray, k=int(rng.integers(4)))
    if rng.random() < 0.5:
        gray = gray[:, ::-1]
    contrast, brightness = rng.uniform(0.9, 1.1), rng.uniform(-0.04, 0.04)
    gray = (gray - gray.mean()) * contrast + gray.mean() + brightness
    return np.clip(gray[..., None] * np.array(_TINTS[category]), 0.0, 1.0)


def _area_radius(rng: np.random.Generator, size: int, lo: float, hi: float) -> float:
    """Radius of a disc covering a log-uniform fraction in [lo, hi] of the image area."""
    frac = np.exp(rng.uniform(np.log(lo), np.log(hi)))
    return float(np.sqrt(frac * size * size / np.pi))


def _soft_alpha(mask: np.ndarray, ramp: float) -> np.ndarray:
    """Opacity rising from ~1/ramp at the mask border to 1 inside; exactly 0 outside the mask."""
    return np.minimum(1.0, ndimage.distance_transform_edt(mask) / ramp)


def _scratch(img: FloatImage, rng: np.random.Generator, _category: str):
    size = img.shape[0]
    p0 = rng.uniform(0.2 * size, 0.8 * size, size=2)
    angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(0.45, 0.9) * size
    p2 = p0 + length * np.array([np.cos(angle), np.sin(angle)])
    bend = rng.uniform(-0.25, 0.25) * length * np.array([-np.sin(angle), np.cos(angle)])
    p1 = (p0 + p2) / 2 + bend
    t = np.linspace(0.0, 1.0, int(3 * length) + 2)[:, None]
    pts = np.rint((1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2).astype(int)
    pts = pts[((pts >= 0) & (pts < size)).all(axis=1)]
    mask = np.zeros((size, size), bool)
    mask[pts[:, 0], pts[:, 1]] = True
    width = int(rng.choice([1, 2, 3], p=[0.2, 0.4, 0.4]))
    if width > 1:
        mask = ndimage.binary_dilation(mask, structure=np.ones((width, width), bool))
    # Bright on dark surroundings, dark on bright ones, so the scratch is always visible.
    bright = img[mask].mean() < 0.45
    value = rng.uniform(0.9, 1.0) if bright else rng.uniform(0.0, 0.1)
    out = img.copy()
    out[mask] = 0.1 * img[mask] + 0.9 * value
    return out, mask


def _stain(img: FloatImage, rng: np.random.Generator, _category: str):
    size = img.shape[0]
    radius = _area_radius(rng, size, 0.006, 0.08)
    centre = rng.uniform(radius, size - radius, size=2)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    mask = np.zeros((size, size), bool)
    for _ in range(int(rng.integers(3, 7))):
        c = centre + rng.normal(0.0, 0.45 * radius, size=2)
        a, b = rng.uniform(0.45, 0.9, size=2) * radius
        theta = rng.uniform(0, np.pi)
        u = (rows - c[0]) * np.cos(theta) + (cols - c[1]) * np.sin(theta)
        v = -(rows - c[0]) * np.sin(theta) + (cols - c[1]) * np.cos(theta)
        mask |= (u / a) ** 2 + (v / b) ** 2 <= 1.0
    mask[int(centre[0]), int(centre[1])] = True  # never empty, even if every ellipse drifted off
    alpha = rng.uniform(0.55, 0.75) * (0.5 + 0.5 * _soft_alpha(mask, 3.0))[..., None]
    tone = _STAIN_RGB * rng.uniform(0.8, 1.2)
    out = np.where(mask[..., None], img * (1 - alpha) + tone * alpha, img)
    return out, mask


def _cut_paste(img: FloatImage, rng: np.random.Generator, category: str):
    size = img.shape[0]
    source = _normal_image(category, rng, size, _PATCH_CROP_RANGE)  # another, zoomed crop
    area = np.exp(rng.uniform(np.log(0.01), np.log(0.09))) * size * size
    aspect = rng.uniform(0.5, 2.0)
    h = min(np.sqrt(area * aspect), 0.6 * size)
    w = min(area / h, 0.6 * size)
    half_diag = np.hypot(h, w) / 2
    dst = rng.uniform(half_diag * 0.6, size - half_diag * 0.6, size=2)
    src = rng.uniform([h / 2, w / 2], [size - 1 - h / 2, size - 1 - w / 2])
    theta = rng.uniform(np.pi / 12, np.pi / 2 - np.pi / 12) * rng.choice([-1, 1])
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    # Patch coordinates (u, v) of each destination pixel: rotate back by theta.
    u = (rows - dst[0]) * np.cos(theta) + (cols - dst[1]) * np.sin(theta)
    v = -(rows - dst[0]) * np.sin(theta) + (cols - dst[1]) * np.cos(theta)
    mask = (np.abs(u) <= h / 2) & (np.abs(v) <= w / 2)
    mask[int(dst[0]), int(dst[1])] = True
    sr = np.clip(np.rint(src[0] + u[mask]).astype(int), 0, size - 1)
    sc = np.clip(np.rint(src[1] + v[mask]).astype(int), 0, size - 1)
    gain = rng.uniform(0.72, 0.85) if rng.random() < 0.5 else rng.uniform(1.15, 1.3)
    out = img.copy()
    out[mask] = np.clip(source[sr, sc] * gain, 0.0, 1.0)
    return out, mask


def _hole(img: FloatImage, rng: np.random.Generator, _category: str):
    size = img.shape[0]
    radius = _area_radius(rng, size, 0.005, 0.06)
    centre = rng.uniform(radius, size - radius, size=2)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    dist2 = ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / radius**2
    noise = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma=max(radius / 3, 1.0))
    field = (1.0 - dist2) + 0.45 * noise / (np.abs(noise).max() + 1e-12)  # > 0 at the centre
    labels, _ = ndimage.label(field > 0)
    mask = labels == labels[int(centre[0]), int(centre[1])]
    alpha = _soft_alpha(mask, 3.0)[..., None]  # soft rim, near-black core, all inside the mask
    dark = 0.03 + 0.12 * img  # keep a trace of the texture inside the hole
    out = np.where(mask[..., None], img * (1 - alpha) + dark * alpha, img)
    return out, mask


_DRAWERS = {"scratch": _scratch, "stain": _stain, "cut_paste": _cut_paste, "hole": _hole}


def make_normal_sample(
    category: str, split: str, index: int, *, image_size: int = 128, seed: int = 0
) -> np.ndarray:
    """One good image (uint8 RGB) of ``split`` 'train'/'test', exactly as generate_demo writes."""
    kind = {"train": "train", "test": "good"}[split]
    return _to_uint8(_normal_image(category, _rng(seed, category, kind, index), image_size))


def make_defect_sample(
    category: str, defect: str, index: int, *, image_size: int = 128, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean uint8 RGB, defective uint8 RGB, bool mask) for one anomalous test sample.

    ``defective`` equals ``clean`` outside ``mask`` bit for bit; ``mask`` is what generate_demo
    writes as the ground truth of ``test/<defect>/<index>.png``.
    """
    if defect not in _DRAWERS:
        raise ValueError(f"unknown defect type {defect!r}; choose from {DEFECT_TYPES}")
    rng = _rng(seed, category, defect, index)
    clean = _normal_image(category, rng, image_size)
    drawn, mask = _DRAWERS[defect](clean, rng, category)
    clean_u8 = _to_uint8(clean)
    defective = np.where(mask[..., None], _to_uint8(drawn), clean_u8)
    return clean_u8, defective, mask


def _save_png(path: Path, array: np.ndarray) -> None:
    """Plain PNG without metadata (no timestamps), so equal arrays give equal bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG", compress_level=6)


def _readme(categories: tuple[str, ...], params: dict) -> str:
    lines = [
        "# iadbench demo dataset",
        "",
        "Synthetic anomaly-detection dataset in the MVTec AD layout, generated by",
        "`iadbench.data.demo.generate_demo` (no download needed). Do not edit by hand: it is",
        "regenerated (and replaced as a whole) from the parameters below.",
        "",
        "## Source",
        "",
        "Good images are random crops (flipped/rotated, mild brightness/contrast jitter, fixed",
        "per-category colour tint) of the texture photographs shipped with scikit-image",
        "(`skimage.data`), all released under the Creative Commons CC0 licence (public domain):",
        "",
        "- `brick`: brick wall, from CC0Textures (Bricks25), CC0.",
        "- `grass`: grass, from DeviantArt user linolafett (Grass-01), CC0.",
        "- `gravel`: gravel, from CC0Textures (Gravel04), CC0.",
        "",
        "## Defects (test/<defect>, exact masks in ground_truth/<defect>/NNN_mask.png)",
        "",
        "- `scratch`: thin bright or dark curve, 1-3 px wide.",
        "- `stain`: irregular blob (union of ellipses) with a semi-transparent brown tint.",
        "- `cut_paste`: rotated rectangle cut from another, zoomed-in and brightened or",
        "  darkened crop of the same photograph.",
        "- `hole`: near-black irregular region with a soft rim.",
        "",
        "Masks are 8-bit single-channel PNG with values 0/255 and mark exactly the changed pixels;",
        "good images have no mask.",
        "",
        "## Parameters",
        "",
        f"- categories: {', '.join(categories)}",
        *(f"- {key}: {value}" for key, value in params.items()),
        "",
    ]
    return "\n".join(lines)


def generate_demo(
    root: str | Path,
    categories=DEMO_CATEGORIES,
    *,
    image_size: int = 128,
    n_train: int = 24,
    n_test_good: int = 8,
    n_per_defect: int = 4,
    seed: int = 0,
) -> dict:
    """Write the demo dataset to ``root`` (replacing it atomically) and return a count summary.

    Layout per category: ``train/good/NNN.png``, ``test/good/NNN.png``, ``test/<defect>/NNN.png``
    and ``ground_truth/<defect>/NNN_mask.png`` for every defect in :data:`DEFECT_TYPES`.
    """
    categories = tuple(categories)
    unknown = [c for c in categories if c not in DEMO_CATEGORIES]
    if unknown or not categories or len(set(categories)) != len(categories):
        raise ValueError(
            f"categories must be distinct names from {DEMO_CATEGORIES}, got {categories}"
        )
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32, got {image_size}")
    if min(n_train, n_test_good, n_per_defect) < 1:
        raise ValueError("n_train, n_test_good and n_per_defect must all be >= 1")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")

    params = {
        "seed": seed,
        "image_size": image_size,
        "n_train": n_train,
        "n_test_good": n_test_good,
        "n_per_defect": n_per_defect,
    }
    summary: dict = {"root": str(Path(root)), **params, "categories": {}}
    with atomic_dir(root) as tmp:
        tmp.chmod(0o755)  # mkdtemp makes it private; the dataset is an ordinary folder
        for cat in categories:
            for split, count in (("train", n_train), ("test", n_test_good)):
                for i in range(count):
                    img = make_normal_sample(cat, split, i, image_size=image_size, seed=seed)
                    _save_png(tmp / cat / split / "good" / f"{i:03d}.png", img)
            for defect in DEFECT_TYPES:
                for i in range(n_per_defect):
                    _, img, mask = make_defect_sample(
                        cat, defect, i, image_size=image_size, seed=seed
                    )
                    _save_png(tmp / cat / "test" / defect / f"{i:03d}.png", img)
                    _save_png(
                        tmp / cat / "ground_truth" / defect / f"{i:03d}_mask.png",
                        mask.astype(np.uint8) * 255,
                    )
            summary["categories"][cat] = {
                "train": {"good": n_train},
                "test": {"good": n_test_good, **{d: n_per_defect for d in DEFECT_TYPES}},
            }
        (tmp / "README.md").write_text(_readme(categories, params))
    return summary
