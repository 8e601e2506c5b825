"""Feature extraction into the store: resolved taps in the cache key, per-tap reduction and the
``layer_dims`` metadata that layer fusion slices by."""

import numpy as np
import pytest
import torch

from iadbench.data.manifest import build_manifest
from iadbench.errors import CacheError, ConfigError
from iadbench.features.extract import FORMAT_VERSION, FeatureConfig, extract_features
from iadbench.features.patches import layer_shares, locally_aware_patches
from iadbench.features.store import config_hash, load_features, write_features

GEOMETRY = {"resize": 64, "crop": 64}


def extract(tiny_mvtec, tmp_path, backbone: dict):
    frame = build_manifest(
        "tiny", {"layout": "mvtec", "root": str(tiny_mvtec), "categories": ["widget"]}
    )
    cfg = FeatureConfig.from_config(backbone, GEOMETRY)
    npy, index = tmp_path / "train.npy", tmp_path / "train.parquet"
    extract_features(frame, "widget", "train", cfg, npy, index, device="cpu", batch_size=2)
    return load_features(npy, index, expect_hash=cfg.hash())


def test_layer_shares_are_proportional_and_sum_to_dim():
    assert layer_shares([128, 256]) == [128, 256]
    assert layer_shares([128, 256], 100) == [33, 67]
    assert layer_shares([512, 1024], 1024) == [341, 683]
    assert layer_shares([768] * 4, 1000) == [250] * 4
    assert layer_shares([1, 1000], 2) == [1, 1]  # every tap keeps a channel
    assert sum(layer_shares([3, 3, 3], 10)) == 10
    with pytest.raises(ValueError, match="smaller than the number of taps"):
        layer_shares([4, 4, 4], 2)


def test_reduction_is_per_tap_so_blocks_stay_separable():
    fine, coarse = torch.randn(1, 6, 8, 8), torch.randn(1, 12, 4, 4)
    out = locally_aware_patches([fine, coarse], patch_size=3, dim=9)
    assert out.shape == (1, 8, 8, 9)
    assert torch.allclose(out[..., :3], locally_aware_patches([fine], patch_size=3, dim=3))
    # The coarse block is the coarse tap alone: changing the fine tap leaves it untouched.
    other = locally_aware_patches([torch.zeros_like(fine), coarse], patch_size=3, dim=9)
    assert torch.equal(out[..., 3:], other[..., 3:])


@pytest.mark.parametrize("dim, layer_dims", [(None, [128, 256]), (100, [33, 67])])
def test_cnn_extraction_records_layer_dims(tiny_mvtec, tmp_path, dim, layer_dims):
    store = extract(tiny_mvtec, tmp_path, {"model": "resnet18", "weights": "random", "dim": dim})
    meta = store.meta
    assert meta["layer_dims"] == layer_dims
    assert sum(meta["layer_dims"]) == meta["channels"] == store.features.shape[-1]
    assert meta["layers"] == [2, 3] and meta["family"] == "cnn"
    assert meta["grid"] == [8, 8] and meta["model_input"] == [64, 64]
    assert meta["format"] == FORMAT_VERSION


def test_clip_extraction_resizes_to_native_and_records_taps(tiny_mvtec, tmp_path):
    backbone = {"model": "clip_vit_b32", "weights": "random", "layers": [-1, 5], "dim": 64}
    meta = extract(tiny_mvtec, tmp_path, backbone).meta
    assert meta["family"] == "clip" and meta["library_name"] == "ViT-B-32"
    assert meta["layers"] == [5, 11] and meta["layer_dims"] == [32, 32]
    assert meta["grid"] == [7, 7] and meta["model_input"] == [224, 224]


def test_equivalent_layer_spellings_share_one_cache_key():
    spellings = ([-2, -1], "last2", [11, 10], (10, 11))
    configs = [FeatureConfig("clip_vit_b32", "random", layers) for layers in spellings]
    assert {c.layers for c in configs} == {(10, 11)}
    assert len({c.hash() for c in configs}) == 1
    assert FeatureConfig("resnet18", "random").layers == (2, 3)
    assert FeatureConfig("resnet18", "random").hash() != configs[0].hash()


def test_bad_feature_configs_are_config_errors():
    with pytest.raises(ConfigError, match="layer 7 outside -5..4"):
        FeatureConfig.from_config({"model": "resnet18", "layers": [7]}, GEOMETRY)
    with pytest.raises(ConfigError, match="dim 1 is smaller than the number of taps"):
        FeatureConfig.from_config({"model": "resnet18", "weights": "random", "dim": 1}, GEOMETRY)


def test_caches_of_an_older_format_are_refused(tiny_mvtec, tmp_path):
    cfg = FeatureConfig("resnet18", "random")
    old = {**cfg.identity(), "format": FORMAT_VERSION - 1}
    frame = build_manifest(
        "tiny", {"layout": "mvtec", "root": str(tiny_mvtec), "categories": ["widget"]}
    )
    index = frame[frame["split"] == "train"].reset_index(drop=True)
    npy, parquet = tmp_path / "f.npy", tmp_path / "f.parquet"
    values = np.zeros((len(index), 2, 2, 4), np.float16)
    write_features(npy, parquet, index, {**old, "config_hash": config_hash(old)}, values)
    with pytest.raises(CacheError, match="refusing to reuse"):
        load_features(npy, parquet, expect_hash=cfg.hash())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_extraction_under_autocast_matches_the_cpu_features():
    from iadbench.backbones.loader import load_backbone
    from iadbench.features.extract import patch_features

    cfg = FeatureConfig(model="resnet18", weights="random", layers=[2, 3])
    images = [np.random.default_rng(i).integers(0, 255, (64, 64, 3), np.uint8) for i in range(2)]
    out = {}
    for name in ("cpu", "cuda"):
        device = torch.device(name)
        backbone = load_backbone("resnet18", "random", [2, 3], seed=0, device=device)
        out[name], dims = patch_features(backbone, images, cfg, device)
    assert out["cuda"].dtype == np.float16 and out["cuda"].shape == out["cpu"].shape
    scale = float(np.abs(out["cpu"].astype(np.float32)).max())
    np.testing.assert_allclose(out["cuda"], out["cpu"], atol=0.02 * scale)


def test_nearest_upsampling_repeats_each_deeper_cell():
    """PaDiM's embedding: patch_size 1 keeps the taps raw; deeper taps are np.repeat'ed."""
    rng = np.random.default_rng(0)
    fine = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
    mid = rng.normal(size=(2, 4, 4, 4)).astype(np.float32)
    coarse = rng.normal(size=(2, 5, 2, 2)).astype(np.float32)
    out = locally_aware_patches(
        [torch.from_numpy(t) for t in (fine, mid, coarse)], patch_size=1, upsample="nearest"
    ).numpy()
    assert out.shape == (2, 8, 8, 12)
    expected = [
        fine,
        np.repeat(np.repeat(mid, 2, axis=2), 2, axis=3),
        np.repeat(np.repeat(coarse, 4, axis=2), 4, axis=3),
    ]
    np.testing.assert_array_equal(out, np.concatenate(expected, axis=1).transpose(0, 2, 3, 1))
    bilinear = locally_aware_patches([torch.from_numpy(fine), torch.from_numpy(mid)], 1).numpy()
    assert not np.allclose(bilinear[..., 3:], out[..., 3:7])
    with pytest.raises(ValueError, match="unknown upsampling"):
        locally_aware_patches([torch.from_numpy(fine)], upsample="bicubic")


def test_upsample_is_part_of_the_cache_key():
    base = {"model": "resnet18", "weights": "random", "layers": [1, 2, 3], "patch_size": 1}
    bilinear = FeatureConfig.from_config(base, GEOMETRY)
    nearest = FeatureConfig.from_config({**base, "upsample": "nearest"}, GEOMETRY)
    assert bilinear.upsample == "bilinear" and nearest.identity()["upsample"] == "nearest"
    assert bilinear.hash() != nearest.hash()
    with pytest.raises(ConfigError, match="upsample 'cubic'"):
        FeatureConfig.from_config({**base, "upsample": "cubic"}, GEOMETRY)
