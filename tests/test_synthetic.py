"""Synthetic anomalies (CutPaste, CutPaste-Scar) that give the classifier gate an anomaly class."""

from __future__ import annotations

import numpy as np
import pytest

from iadbench.data.synthetic import (
    SYNTHETIC_MODES,
    Box,
    cutpaste,
    cutpaste_scar,
    synthesize,
)
from iadbench.errors import ConfigError


def noise(height: int = 128, width: int = 128, seed: int = 0) -> np.ndarray:
    """Random RGB noise: every paste changes pixels and every patch has many colours."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the mask's True pixels."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return rows[0], cols[0], rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def is_scar(out: np.ndarray, mask: np.ndarray) -> bool:
    """On a noise image only the scar paints its whole region with one colour."""
    return len(np.unique(out[mask], axis=0)) == 1


def run(mode: str, image: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return synthesize(image, np.random.default_rng(seed), mode)


@pytest.mark.parametrize("mode", SYNTHETIC_MODES)
def test_same_seed_same_result_other_seed_differs(mode):
    image = noise()
    out_a, mask_a = run(mode, image, 7)
    out_b, mask_b = run(mode, image, 7)
    np.testing.assert_array_equal(out_a, out_b)
    np.testing.assert_array_equal(mask_a, mask_b)
    out_c, mask_c = run(mode, image, 8)
    assert not np.array_equal(mask_a, mask_c) or not np.array_equal(out_a, out_c)


@pytest.mark.parametrize("mode", SYNTHETIC_MODES)
def test_input_is_not_modified(mode):
    image = noise()
    before = image.copy()
    for seed in range(5):
        run(mode, image, seed)
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize("mode", SYNTHETIC_MODES)
@pytest.mark.parametrize("shape", [(128, 128), (96, 160), (160, 96), (32, 32)])
def test_only_the_masked_pixels_change(mode, shape):
    image = noise(*shape)
    for seed in range(20):
        out, mask = run(mode, image, seed)
        assert out.dtype == np.uint8 and out.shape == image.shape
        assert mask.dtype == bool and mask.shape == shape
        assert mask.any()
        np.testing.assert_array_equal(out[~mask], image[~mask])
        assert (out[mask] != image[mask]).any(axis=-1).any()


def test_cutpaste_without_jitter_copies_the_cut_block():
    image = noise(96, 160)
    for seed in range(30):
        out, mask, (cut, paste) = cutpaste(
            image, np.random.default_rng(seed), jitter=0, return_boxes=True
        )
        assert isinstance(cut, Box) and (cut.height, cut.width) == (paste.height, paste.width)
        assert (cut.y, cut.x) != (paste.y, paste.x)
        assert bounding_box(mask) == (paste.y, paste.x, paste.height, paste.width)
        assert mask.sum() == paste.height * paste.width
        np.testing.assert_array_equal(out[paste.slices], image[cut.slices])
        np.testing.assert_array_equal(out[mask], image[cut.slices].reshape(-1, 3))


def test_cutpaste_boxes_lie_inside_the_image():
    height, width = 96, 160
    image = noise(height, width)
    for seed in range(100):
        _, _, boxes = cutpaste(image, np.random.default_rng(seed), return_boxes=True)
        for box in boxes:
            assert box.y >= 0 and box.x >= 0
            assert box.y + box.height <= height and box.x + box.width <= width


def test_jitter_changes_the_colours_but_not_the_boxes():
    image = noise()
    plain, mask, boxes = cutpaste(image, np.random.default_rng(3), jitter=0, return_boxes=True)
    jittered, mask_j, boxes_j = cutpaste(
        image, np.random.default_rng(3), jitter=0.1, return_boxes=True
    )
    assert boxes == boxes_j
    np.testing.assert_array_equal(mask, mask_j)
    assert not np.array_equal(plain[mask], jittered[mask])
    np.testing.assert_array_equal(plain[~mask], jittered[~mask])


def test_cutpaste_area_and_aspect_stay_in_bounds():
    size = 128
    image = noise(size, size)
    rng = np.random.default_rng(11)
    fractions, ratios = [], []
    for _ in range(200):
        _, mask = cutpaste(image, rng)
        _, _, h, w = bounding_box(mask)
        assert mask.sum() == h * w, "the CutPaste mask is a filled rectangle"
        # each side may be off by one pixel from rounding the drawn size
        assert (h - 1) * (w - 1) <= 0.15 * size * size
        assert (h + 1) * (w + 1) >= 0.02 * size * size
        assert (w - 0.5) / (h + 0.5) <= 3.3 and (w + 0.5) / (h - 0.5) >= 0.3
        fractions.append(h * w / size**2)
        ratios.append(w / h)
    # the draws cover the range rather than sitting at one spot
    assert min(fractions) < 0.04 and max(fractions) > 0.12
    assert min(ratios) < 0.5 and max(ratios) > 2.0


@pytest.mark.parametrize("shape", [(10, 1000), (1000, 10), (40, 400)])
def test_cutpaste_keeps_the_aspect_bound_on_elongated_images(shape):
    image = noise(*shape)
    for seed in range(30):
        out, mask, (cut, paste) = cutpaste(
            image, np.random.default_rng(seed), jitter=0, return_boxes=True
        )
        h, w = paste.height, paste.width
        assert h <= shape[0] and w <= shape[1]
        assert (w - 0.5) / (h + 0.5) <= 3.3 and (w + 0.5) / (h - 0.5) >= 0.3
        assert mask.sum() <= 0.15 * mask.size + h + w
        np.testing.assert_array_equal(out[paste.slices], image[cut.slices])


def test_scar_pixels_share_one_colour_and_match_the_size_bounds():
    image = noise()
    rng = np.random.default_rng(5)
    for _ in range(100):
        out, mask = cutpaste_scar(image, rng)
        assert is_scar(out, mask)
        # 2x10 .. 16x25 pixels; nearest-neighbour rotation loses or gains a few border pixels
        assert 0.6 * 2 * 10 <= mask.sum() <= 1.15 * 16 * 25
        _, _, h, w = bounding_box(mask)
        assert max(h, w) <= 30


@pytest.mark.parametrize("degrees", [-45.0, -30.0, -10.0, 0.0, 20.0, 45.0])
def test_scar_of_fixed_size_has_about_width_times_length_pixels(degrees):
    out, mask = cutpaste_scar(
        noise(), np.random.default_rng(0), width=(4, 4), length=(20, 20), angle=(degrees, degrees)
    )
    assert 0.85 * 80 <= mask.sum() <= 1.15 * 80
    assert is_scar(out, mask)


def test_unrotated_scar_is_an_upright_block():
    _, mask = cutpaste_scar(
        noise(), np.random.default_rng(1), width=(3, 3), length=(12, 12), angle=(0.0, 0.0)
    )
    _, _, h, w = bounding_box(mask)
    assert (h, w) == (12, 3) and mask.sum() == 36


def test_rotated_scar_leans():
    _, mask = cutpaste_scar(
        noise(), np.random.default_rng(1), width=(3, 3), length=(20, 20), angle=(45.0, 45.0)
    )
    _, _, h, w = bounding_box(mask)
    assert 12 <= h <= 18 and 12 <= w <= 18


@pytest.mark.parametrize("shape", [(12, 12), (16, 40), (8, 8), (2, 2)])
def test_scar_shrinks_to_fit_small_images(shape):
    image = noise(*shape)
    for seed in range(30):
        out, mask = cutpaste_scar(image, np.random.default_rng(seed))
        assert mask.any() and is_scar(out, mask)
        np.testing.assert_array_equal(out[~mask], image[~mask])
        _, _, h, w = bounding_box(mask)
        assert h <= shape[0] and w <= shape[1]


@pytest.mark.parametrize("shape", [(2, 2), (4, 4), (8, 8), (3, 50)])
def test_cutpaste_works_on_tiny_images(shape):
    image = noise(*shape)
    for seed in range(30):
        out, mask, (cut, paste) = cutpaste(
            image, np.random.default_rng(seed), jitter=0, return_boxes=True
        )
        assert mask.any() and (cut.y, cut.x) != (paste.y, paste.x)
        np.testing.assert_array_equal(out[paste.slices], image[cut.slices])


def test_mixed_mode_produces_both_kinds():
    image = noise()
    rng = np.random.default_rng(2)
    scars = sum(is_scar(*synthesize(image, rng, "mixed")) for _ in range(200))
    assert 60 <= scars <= 140


@pytest.mark.parametrize(
    "call",
    [
        lambda img, rng: synthesize(img, rng, "blur"),
        lambda img, rng: synthesize(img, rng, "CutPaste"),
        lambda img, rng: cutpaste(img, rng, area=(0.0, 0.1)),
        lambda img, rng: cutpaste(img, rng, area=(0.2, 0.1)),
        lambda img, rng: cutpaste(img, rng, area=(0.1, 1.0)),
        lambda img, rng: cutpaste(img, rng, area=0.1),
        lambda img, rng: cutpaste(img, rng, aspect=(0.0, 3.0)),
        lambda img, rng: cutpaste(img, rng, aspect=(3.0, 1.0)),
        lambda img, rng: cutpaste(img, rng, aspect=(1.0, float("inf"))),
        lambda img, rng: cutpaste(img, rng, jitter=-0.1),
        lambda img, rng: cutpaste(img, rng, jitter=0.8),
        lambda img, rng: cutpaste(img, rng, jitter="strong"),
        lambda img, rng: cutpaste_scar(img, rng, width=(0, 4)),
        lambda img, rng: cutpaste_scar(img, rng, width=(8, 4)),
        lambda img, rng: cutpaste_scar(img, rng, length=(10.5, 20)),
        lambda img, rng: cutpaste_scar(img, rng, length=(10, 20, 30)),
        lambda img, rng: cutpaste_scar(img, rng, angle=(45.0, -45.0)),
        lambda img, rng: cutpaste_scar(img, rng, angle=(float("nan"), 0.0)),
        lambda img, rng: synthesize(img.astype(np.float32), rng, "cutpaste"),
        lambda img, rng: synthesize(img[..., 0], rng, "scar"),
        lambda img, rng: synthesize(img[:1], rng, "cutpaste"),
        lambda img, rng: synthesize(img, 0, "cutpaste"),
        lambda img, rng: cutpaste_scar(img, np.random.RandomState(0)),
    ],
)
def test_bad_arguments_raise_config_error(call):
    with pytest.raises(ConfigError):
        call(noise(32, 32), np.random.default_rng(0))


def test_config_error_names_the_valid_modes():
    with pytest.raises(ConfigError, match="cutpaste, scar, mixed"):
        synthesize(noise(), np.random.default_rng(0), "cut")
