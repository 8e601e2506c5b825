"""Synthetic anomalies (CutPaste, Scar, Perlin, NSA) that give a gate its anomaly class."""

from __future__ import annotations

import numpy as np
import pytest

from iadbench.data.synthetic import (
    RECIPES,
    SYNTHETIC_MODES,
    Box,
    cutpaste,
    cutpaste_scar,
    draw_recipe,
    nsa,
    perlin,
    perlin_noise,
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


def test_cutpaste_mixed_mode_produces_both_kinds():
    image = noise()
    rng = np.random.default_rng(2)
    scars = sum(is_scar(*synthesize(image, rng, "cutpaste_mixed")) for _ in range(200))
    assert 60 <= scars <= 140


def test_mixed_mode_draws_every_recipe_about_equally():
    rng = np.random.default_rng(3)
    drawn = [draw_recipe(rng, "mixed") for _ in range(800)]
    for recipe in RECIPES:
        assert 150 <= drawn.count(recipe) <= 250  # 200 expected, binomial sd ~12
    assert draw_recipe(rng, "nsa") == "nsa"


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
        lambda img, rng: perlin(img, rng, beta=(0.5, 1.5)),
        lambda img, rng: perlin(img, rng, area=(0.0, 0.5)),
        lambda img, rng: perlin(img, rng, scale=(0.5, 2)),
        lambda img, rng: perlin(img, rng, texture=img[..., 0]),
        lambda img, rng: nsa(img, rng, area=(0.1, 1.0)),
        lambda img, rng: nsa(img, rng, clone="poisson"),
        lambda img, rng: nsa(img[:3, :3], rng),
    ],
)
def test_bad_arguments_raise_config_error(call):
    with pytest.raises(ConfigError):
        call(noise(32, 32), np.random.default_rng(0))


def test_config_error_names_the_valid_modes():
    with pytest.raises(ConfigError, match="cutpaste, scar, perlin, nsa, cutpaste_mixed, mixed"):
        synthesize(noise(), np.random.default_rng(0), "cut")


# --- Perlin (DRAEM) and NSA ------------------------------------------------------------------


def test_perlin_noise_is_bounded_and_reproducible():
    a = perlin_noise(40, 56, (4, 8), np.random.default_rng(0))
    b = perlin_noise(40, 56, (4, 8), np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    # 2-D gradient noise is at most sqrt(1/2) in magnitude; scaled by sqrt(2) that is 1.
    assert a.shape == (40, 56) and np.abs(a).max() <= 1.0 + 1e-9 and a.std() > 0.05


@pytest.mark.parametrize(
    "kwargs, low, high",
    [
        ({}, 0.005, 0.5),
        ({"scale": (0, 0)}, 0.005, 0.5),  # one lattice cell: often nothing above 0.5
        ({"threshold": -2.0}, 0.005, 0.5),  # everything above: capped at the high bound
        ({"area": (0.1, 0.2)}, 0.1, 0.2),
    ],
)
def test_perlin_mask_area_stays_within_its_bounds(kwargs, low, high):
    image = noise(48, 64)
    n = 48 * 64
    for seed in range(15):
        out, mask = perlin(image, np.random.default_rng(seed), noise(32, 32, 9), **kwargs)
        assert np.ceil(low * n) <= mask.sum() <= np.floor(high * n)
        np.testing.assert_array_equal(out[~mask], image[~mask])


def test_perlin_blend_weights_image_and_texture_by_beta():
    image = noise(32, 32)
    # beta = 1: the blend is all image, nothing changes (1 * image + 0 * texture).
    out, mask = perlin(image, np.random.default_rng(1), noise(32, 32, 5), beta=(1.0, 1.0))
    assert mask.any()
    np.testing.assert_array_equal(out, image)
    # beta = 0: inside the mask only the (augmented) texture counts, whatever the image.
    texture = noise(32, 32, 5)
    a, mask_a = perlin(image, np.random.default_rng(4), texture, beta=(0.0, 0.0))
    b, mask_b = perlin(noise(32, 32, 6), np.random.default_rng(4), texture, beta=(0.0, 0.0))
    np.testing.assert_array_equal(mask_a, mask_b)
    np.testing.assert_array_equal(a[mask_a], b[mask_b])


def test_nsa_mask_is_a_rectangle_inside_a_one_pixel_margin():
    height, width = 40, 56
    image = noise(height, width)
    for seed in range(25):
        out, mask = nsa(image, np.random.default_rng(seed), noise(height, width, 3))
        top, left, h, w = bounding_box(mask)
        assert mask.sum() == h * w  # a full rectangle
        assert top >= 1 and left >= 1 and top + h <= height - 1 and left + w <= width - 1
        # area drawn from 2-15 % of the inner (H-2) x (W-2) image, rounded to whole pixels
        inner = (height - 2) * (width - 2)
        assert 0.02 * inner - (h + w) <= h * w <= 0.15 * inner + (h + w)
        np.testing.assert_array_equal(out[~mask], image[~mask])


def test_nsa_is_poisson_blending_not_a_paste():
    """A flat source has no gradient: the Poisson solution is the flat boundary value."""
    image = np.full((32, 32, 3), 90, dtype=np.uint8)
    source = np.full((32, 32, 3), 200, dtype=np.uint8)
    out, mask = nsa(image, np.random.default_rng(0), source)
    assert mask.any()
    assert np.abs(out.astype(int) - 90).max() <= 1  # a paste would put 200 there
    # A textured source keeps its texture inside the mask (its gradients are the guide).
    out, mask = nsa(image, np.random.default_rng(0), noise(32, 32, 2))
    assert out[mask].std() > 20


@pytest.mark.parametrize("mode", ["perlin", "nsa"])
def test_pool_recipes_draw_their_source_from_the_pool(mode):
    image, other = noise(32, 32, 1), noise(32, 32, 2)
    a, _ = synthesize(image, np.random.default_rng(5), mode, pool=[other])
    b, _ = synthesize(image, np.random.default_rng(5), mode, pool=[other])
    c, _ = synthesize(image, np.random.default_rng(5), mode)  # the image itself as source
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_texture_folder_is_read_sorted_and_refused_when_empty(tmp_path):
    from PIL import Image

    from iadbench.data.synthetic import texture_images
    from iadbench.methods import build_method

    with pytest.raises(ConfigError, match="not a folder"):
        texture_images(tmp_path / "absent")
    with pytest.raises(ConfigError, match="no images"):
        texture_images(tmp_path)
    for name, value in (("b.png", 200), ("a.png", 10)):
        Image.fromarray(np.full((4, 5, 3), value, np.uint8)).save(tmp_path / name)
    textures = texture_images(tmp_path)
    assert [t[0, 0, 0] for t in textures] == [10, 200] and textures[0].shape == (4, 5, 3)
    with pytest.raises(ConfigError, match="texture_dir"):  # only the perlin recipe reads it
        build_method({"kind": "classifier", "synthetic": "nsa", "texture_dir": str(tmp_path)})
