"""The frozen-stream cache of the trained CLIP kinds and APRIL-GAN's mosaic (tiny random CLIP).

Training from the cache is the same computation as training from images; the only difference
is the storage. With an fp32 store the trained weights and losses are bit-identical. With the
fp16 store (11 significant bits: ~5e-4 relative per token) logits agree to 1e-3 in cosine units,
per-epoch losses to 1e-3 relative (3e-5..8e-5 seen) and weights to lr × steps, the most Adam can
move a weight whose near-zero gradient the rounding flips (half of that seen).
"""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from iadbench.clip import frozen as frozen_module
from iadbench.clip.encoder import FrozenStream, load_clip
from iadbench.clip.train_data import ImageSet, mosaic
from iadbench.data.images import Geometry
from iadbench.errors import CacheError, ConfigError
from iadbench.features.extract import normalise_images
from iadbench.methods.april_gan.method import AprilGan
from iadbench.methods.april_gan.params import AprilGanParams
from iadbench.methods.base import MethodInputs
from iadbench.methods.fe_clip.method import FeClip
from iadbench.methods.fe_clip.params import FeClipParams
from iadbench.methods.kinds import params_of
from iadbench.pipeline.clip import cached_frozen, make_frozen

BACKBONE = {"model": "clip_tiny", "weights": "random", "seed": 0}
GEOMETRY = {"resize": 64, "crop": 64, "mask_threshold": 0}
N_IMAGES = 6


def methods(**extra):
    return [
        FeClip({"kind": "fe_clip", "taps": [1, 3], "lam": 0.5, "seed": 0, **extra}, "cpu"),
        # No mosaic, the geometry's bilinear images: the frozen-token cache can serve them.
        AprilGan(
            {"kind": "april_gan", "seed": 0, "mosaic": 0, "image_resize": "bilinear", **extra},
            "cpu",
        ),
    ]


@pytest.mark.parametrize("method", methods(), ids=["fe_clip", "april_gan"])
def test_the_forward_pass_from_the_frozen_stream_is_the_forward_pass(method):
    head = method.build(load_clip("clip_tiny", "random", seed=0))
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    protos = torch.nn.functional.normalize(torch.randn(3, 2, 32), dim=-1)
    frozen = head.frozen(images)
    with torch.no_grad():
        whole, again = head(images, protos), head.from_frozen(frozen, protos)
        half = head.from_frozen(FrozenStream(frozen.tokens.half(), frozen.cls), protos)
    for a, b, c in zip([whole[0], *whole[1]], [again[0], *again[1]], [half[0], *half[1]]):
        assert torch.equal(a, b)
        assert float((a - c).abs().max()) / head.logit_scale() <= 1e-3  # in cosine units


@pytest.fixture
def train_set(tmp_path):
    """A category of six 64-px images (every other one with a square defect) and its manifest."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(N_IMAGES):
        image = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(image)
        mask = None
        if i % 2:
            mask = tmp_path / f"{i}_mask.png"
            pixels = np.zeros((64, 64), np.uint8)
            pixels[10 + i : 30 + i, 20:40] = 255
            Image.fromarray(pixels).save(mask)
        rows.append({"sample_id": f"s{i}", "category": "brick", "split": "test",
                     "label": int(mask is not None), "image_path": str(image),
                     "mask_path": None if mask is None else str(mask)})  # fmt: skip
    manifest = tmp_path / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(manifest)
    return tmp_path, manifest


def train(method, folder, manifest, frozen=None) -> dict[str, torch.Tensor]:
    index = pd.read_parquet(manifest).iloc[::-1].reset_index(drop=True)  # not the file order
    text = {k: np.random.default_rng(k == "normal").normal(size=(3, 32)).astype(np.float32)
            for k in ("normal", "anomalous")}  # fmt: skip
    cached = {"text": text} | ({"frozen": frozen} if frozen is not None else {})
    part = MethodInputs(index, None, {}, index, GEOMETRY, BACKBONE, cached)
    method.train([part], folder, folder / "resume")
    return torch.load(folder / "last.pt")


def cache_of(method, root, manifest):
    view = method.params.cache_view("clip_tiny")
    tokens, meta = root / f"frozen-{view}.npy", root / f"frozen-{view}.npz"
    make_frozen(manifest, "brick", "test", BACKBONE, GEOMETRY, view, tokens, meta, "cpu")
    return cached_frozen(tokens, meta, BACKBONE, GEOMETRY)


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("index", [0, 1], ids=["fe_clip", "april_gan"])
def test_training_from_the_cache_matches_training_from_images(train_set, monkeypatch, index, dtype):
    monkeypatch.setattr(frozen_module, "DTYPE", dtype)
    root, manifest = train_set
    extra = {"epochs": 2, "batch_size": 4, "amp": False}
    images = train(methods(frozen_cache=False, **extra)[index], root / "images", manifest)
    method = methods(**extra)[index]
    cached = train(method, root / "cached", manifest, cache_of(method, root, manifest))
    assert images.keys() == cached.keys()
    losses = [pd.read_csv(root / r / "loss_log.csv")["train_loss"] for r in ("images", "cached")]
    moved = max(float((images[k] - cached[k]).abs().max()) for k in images)
    if dtype == np.float32:  # the same computation: bit for bit
        assert moved == 0.0 and losses[0].equals(losses[1])
    else:  # Adam moves a weight by <= ~lr a step, so a near-zero gradient whose sign the
        # rounding flips may differ by that much; the losses show the runs agree
        assert moved <= float(method.params.lr) * 4  # 4 steps
        assert np.allclose(losses[0], losses[1], rtol=1e-3, atol=0)
    state = (root / "cached/state.json").read_text()
    assert '"frozen_cache": true' in state


def test_the_cache_is_file_backed_fp16_and_refuses_another_identity(train_set):
    root, manifest = train_set
    fe = methods()[0]
    cache = cache_of(fe, root, manifest)
    assert isinstance(cache.tokens, np.memmap) and cache.tokens.dtype == np.float16
    assert cache.tokens.shape == (N_IMAGES, 1, 1 + 8 * 8, 64) and cache.blocks == (0,)
    files = root / "frozen-raw-b0.npy", root / "frozen-raw-b0.npz"
    with pytest.raises(CacheError, match="refusing"):
        cached_frozen(*files, BACKBONE, {**GEOMETRY, "resize": 72})
    with pytest.raises(CacheError, match="refusing"):
        cached_frozen(*files, {**BACKBONE, "seed": 1}, GEOMETRY)
    with pytest.raises(CacheError, match="no cached frozen stream"):
        train(fe, root / "missing", manifest)


def test_cache_views_follow_the_taps_and_the_augmentation():
    cacheable = {"kind": "april_gan", "mosaic": 0, "image_resize": "bilinear"}
    assert params_of(cacheable).cache_view("clip_tiny") == "raw-b0-b1-b2-b3"
    # VAND's defaults (mosaic 0.2, bicubic images) change the images: no cache.
    assert params_of({"kind": "april_gan"}).cache_view("clip_tiny") is None
    assert params_of({**cacheable, "image_resize": "bicubic"}).cache_view("clip_tiny") is None
    assert params_of({"kind": "fe_clip", "taps": [3, 1]}).cache_view("clip_tiny") == "raw-b0"
    assert params_of({"kind": "fe_clip", "taps": [0, 2]}).cache_view("clip_tiny") is None
    assert AprilGanParams(mosaic=0.2, image_resize="bilinear").cache_view("clip_tiny") is None
    assert FeClipParams(taps=[2], frozen_cache=False).cache_view("clip_tiny") is None
    with pytest.raises(ConfigError, match="nothing to cache"):
        FeClipParams(taps=[0], frozen_cache=True).cache_view("clip_tiny")
    with pytest.raises(ConfigError, match="mosaic > 0 changes the training images"):
        params_of({"kind": "april_gan", "mosaic": 0.2, "frozen_cache": True})


def quadrants(array: np.ndarray) -> list[np.ndarray]:
    h, w = array.shape[0] // 2, array.shape[1] // 2
    return [array[:h, :w], array[:h, w:], array[h:, :w], array[h:, w:]]


def test_a_mosaic_puts_each_image_and_mask_in_its_quadrant():
    colours = [10, 90, 170, 250]
    images = [np.full((32, 32, 3), c, np.uint8) for c in colours]
    masks = [np.zeros((32, 32), bool) for _ in colours]
    masks[2][:] = True
    image, mask = mosaic(images, masks)
    assert image.shape == (32, 32, 3) and mask.shape == (32, 32)
    for colour, quarter, mask_quarter, source in zip(
        colours, quadrants(image), quadrants(mask), masks
    ):
        assert np.abs(quarter[2:-2, 2:-2].astype(int) - colour).max() <= 1  # inside, off seams
        assert (mask_quarter[2:-2, 2:-2] == source[0, 0]).all()


def image_set(p: float) -> ImageSet:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(6)]
    masks = [rng.random((16, 16)) > 0.5 for _ in range(6)]
    pp = load_clip("clip_tiny", "random", seed=0).preprocessing
    return ImageSet(images, masks, [0, 0, 0, 1, 1, 1], pp, p)


def draw(data: ImageSet, seed: int) -> list:
    random.seed(seed)
    return [data[i] for i in range(len(data))]


def test_mosaic_probability_zero_is_the_identity_and_a_seed_fixes_the_mosaics():
    plain, always = image_set(0.0), image_set(1.0)
    for (image, _, c), (mosaicked, _, same_c) in zip(draw(plain, 0), draw(always, 0)):
        assert c == same_c and not torch.equal(image, mosaicked)
    for i, (image, mask, _) in enumerate(draw(plain, 0)):
        assert torch.equal(image, normalise_images([plain.images[i]], plain.pp)[0])
        assert torch.equal(mask, torch.from_numpy(plain.masks[i]).float())
    one, two, other = draw(always, 5), draw(always, 5), draw(always, 6)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(one, two))
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(one, other))


# --- APRIL-GAN's training resize: VAND's bicubic images and bilinear-then-0.5 masks ---------------


def test_a_bilinear_mask_resize_is_the_antialiased_triangle_filter_then_half():
    # 4 -> 2 px: PIL's bilinear shrink is a triangle of half-width 2 source pixels centred on
    # each output pixel; output 0 (centre 1.0) weighs source centres 0.5, 1.5, 2.5 by 0.75,
    # 0.75, 0.25 (normalised by 1.75), output 1 (centre 3.0) weighs 1.5, 2.5, 3.5 by .25, .75, .75.
    weights = np.array([[0.75, 0.75, 0.25, 0.0], [0.0, 0.25, 0.75, 0.75]]) / 1.75
    geometry = Geometry(resize=2, crop=2)
    for columns in ([1, 2], [1]):
        mask = np.zeros((4, 4), bool)
        mask[:, columns] = True
        expected = (weights @ mask.astype(float) @ weights.T) > 0.5
        # stripe 1-2: 0.571 per column -> all defect; column 1 alone: 0.43, 0.14 -> none
        assert (geometry.mask(mask, "bilinear") == expected).all()
        assert expected.all() if columns == [1, 2] else not expected.any()
    # Nearest (the geometry's default) keeps source columns 1 and 3 instead.
    stripe = np.zeros((4, 4), bool)
    stripe[:, 1:3] = True
    assert (geometry.mask(stripe) == np.array([[True, False], [True, False]])).all()


def test_april_gan_trains_on_bicubic_images_and_bilinear_thresholded_masks(train_set, monkeypatch):
    from iadbench.methods.clip_trained import trainer as trainer_module

    root, manifest = train_set
    seen: dict = {}

    class Captured(Exception):
        pass

    def capture(images, masks, classes, preprocessing, mosaic_p, resample, **mosaic_of):
        seen.update(images=images, masks=masks, mosaic_p=mosaic_p, resample=resample, **mosaic_of)
        raise Captured

    monkeypatch.setattr(trainer_module, "ImageSet", capture)
    index = pd.read_parquet(manifest)
    text = {k: np.ones((3, 32), np.float32) for k in ("normal", "anomalous")}
    geometry = {"resize": 40, "crop": 40, "mask_threshold": 0}
    part = MethodInputs(index, None, {}, index, geometry, BACKBONE, {"text": text})
    with pytest.raises(Captured):
        AprilGan({"kind": "april_gan", "seed": 0}, "cpu").train([part], root, root / "resume")
    assert seen["mosaic_p"] == 0.2 and seen["resample"] == "bicubic"  # VAND's aug_rate, filter
    # VAND's combine_img: mosaics of the full-size originals, read back from the index's files
    first = index.iloc[0]
    image, _ = seen["originals"](0)
    assert np.array_equal(image, np.asarray(Image.open(first.image_path).convert("RGB")))
    assert seen["mask_resample"] == "bilinear" and seen["geometry"].crop == 40
    for i, row in enumerate(index.itertuples()):
        # VAND: open_clip's preprocess (PIL bicubic) and torchvision's Resize (PIL bilinear) of
        # the 0/255 mask, ToTensor (/255), then gt > 0.5.
        source = Image.open(row.image_path).convert("RGB")
        bicubic = np.asarray(source.resize((40, 40), Image.BICUBIC))
        assert np.array_equal(seen["images"][i], bicubic)
        if isinstance(row.mask_path, str):
            mask = Image.open(row.mask_path).convert("L").resize((40, 40), Image.BILINEAR)
            expected = np.asarray(mask) / 255.0 > 0.5
            assert expected.any() and np.array_equal(seen["masks"][i], expected)
        else:
            assert not seen["masks"][i].any()
