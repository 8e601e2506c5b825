"""The CLIP backbone's image resize filter (``resample``): what reaches the encoder, and the
cache identity that keeps a bilinear file from being served to a bicubic run."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from iadbench.clip.cache import encoder_identity, load_arrays, save_arrays, visual_identity
from iadbench.clip.encoder import load_clip
from iadbench.clip.outputs import image_batches, load_encoder
from iadbench.errors import CacheError, ConfigError

BACKBONE = {"model": "clip_tiny", "weights": "random", "seed": 0}
GEOMETRY = {"resize": 64, "crop": 64}


@pytest.fixture()
def image_file(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)  # odd sizes: filters differ
    path = tmp_path / "im.png"
    Image.fromarray(rgb).save(path)
    return path, rgb


@pytest.mark.parametrize("resample", ["bilinear", "bicubic"])
def test_batches_resize_with_the_backbone_filter(image_file, resample):
    path, rgb = image_file
    encoder = load_encoder({**BACKBONE, "resample": resample}, "cpu")
    assert encoder.resample == resample
    (batch,) = image_batches([str(path)], GEOMETRY, encoder, 4, "test")
    filt = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[resample]
    expected = np.asarray(Image.fromarray(rgb).resize((64, 64), filt), np.float32) / 255.0
    mean = np.asarray(encoder.preprocessing.mean, np.float32)
    std = np.asarray(encoder.preprocessing.std, np.float32)
    expected = ((expected - mean) / std).transpose(2, 0, 1)
    np.testing.assert_allclose(batch[0].numpy(), expected, atol=1e-6)


def test_explicit_filter_overrides_the_backbone(image_file):
    path, rgb = image_file
    encoder = load_encoder({**BACKBONE, "resample": "bicubic"}, "cpu")
    (cubic,) = image_batches([str(path)], GEOMETRY, encoder, 4, "t")
    (linear,) = image_batches([str(path)], GEOMETRY, encoder, 4, "t", "bilinear")
    assert not np.allclose(cubic.numpy(), linear.numpy())


def test_unknown_filter_is_refused():
    with pytest.raises(ConfigError, match="resample 'lanczos'"):
        load_clip("clip_tiny", "random", resample="lanczos")


def test_cache_identity_follows_the_filter(tmp_path):
    bilinear = visual_identity({**BACKBONE, "resample": "bilinear"}, GEOMETRY, "ln_post-b-1")
    bicubic = visual_identity({**BACKBONE, "resample": "bicubic"}, GEOMETRY, "ln_post-b-1")
    assert bilinear != bicubic and bicubic["resample"] == "bicubic"
    # the default leaves the identity as before the switch existed: old caches stay valid
    assert bilinear == visual_identity(BACKBONE, GEOMETRY, "ln_post-b-1")
    assert "resample" not in bilinear
    # text embeddings do not depend on it
    assert encoder_identity({**BACKBONE, "resample": "bicubic"}, visual=False) == (
        encoder_identity(BACKBONE, visual=False)
    )
    target = tmp_path / "visual.npz"
    save_arrays(target, {"cls": np.zeros((1, 4), np.float32)}, {"identity": bilinear})
    load_arrays(target, bilinear)
    with pytest.raises(CacheError, match="refusing to reuse"):
        load_arrays(target, bicubic)


def test_resample_is_refused_on_a_cnn_backbone():
    from iadbench.config import check_references

    config = {
        "datasets": {},
        "backbones": {"cnn": {"model": "efficientnet_lite0", "resample": "bicubic"}},
        "methods": {},
    }
    with pytest.raises(ConfigError, match="backbone 'cnn': resample is the CLIP image filter"):
        check_references(config)
    config["backbones"]["cnn"]["resample"] = "bilinear"  # the default, filled in everywhere
    check_references(config)
