"""Layer fusion: config parsing, the four modes' distance semantics, chunked memmap reads."""

import json

import numpy as np
import pytest

from iadbench.errors import CacheError, ConfigError
from iadbench.features import fusion as fusion_mod
from iadbench.features.fusion import Fusion, FusionState, block_variances, layer_dims_of

DIMS = [3, 5]


@pytest.fixture
def feats(tmp_path):
    """(10, 4, 4, 8) fp16 memmap; the second block has 10x the scale of the first and an offset."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(10, 4, 4, 8))
    data[..., 3:] = data[..., 3:] * 10 + 50
    np.save(tmp_path / "f.npy", data.astype(np.float16))
    return np.load(tmp_path / "f.npy", mmap_mode="r")


def test_config_shapes_and_validation():
    assert Fusion.from_config(None) == Fusion("concat")
    assert Fusion.from_config("single") == Fusion("single", layer=-1)
    assert Fusion.from_config({"mode": "single", "layer": 0}).layer == 0
    assert Fusion.from_config({"mode": "weighted", "weights": [1, 0.5]}).weights == (1.0, 0.5)
    for bad in ("sum", {"mode": "concat", "layer": 0}, {"mode": "weighted"}, [1, 2]):
        with pytest.raises(ConfigError):
            Fusion.from_config(bad)
    with pytest.raises(ConfigError, match="weights >= 0"):
        Fusion.from_config({"mode": "weighted", "weights": [1, -1]})


def test_layer_dims_default_to_one_block_and_are_checked():
    assert layer_dims_of({}, 8) == [8]
    assert layer_dims_of({"layer_dims": DIMS}, 8) == DIMS
    with pytest.raises(CacheError, match="layer_dims"):
        layer_dims_of({"layer_dims": [3, 4]}, 8)


def test_concat_is_the_float32_identity(feats):
    state = Fusion().fit(feats, DIMS)
    out = state.apply(feats)
    assert out.dtype == np.float32 and state.output_dim == 8
    np.testing.assert_array_equal(out, np.asarray(feats, dtype=np.float32))


@pytest.mark.parametrize(("layer", "channels"), [(0, [0, 1, 2]), (-1, [3, 4, 5, 6, 7])])
def test_single_keeps_one_tap(feats, layer, channels):
    state = Fusion("single", layer=layer).fit(feats, DIMS)
    assert state.output_dim == len(channels)
    np.testing.assert_array_equal(state.apply(feats), np.asarray(feats[..., channels], np.float32))
    with pytest.raises(ConfigError, match="out of range"):
        Fusion("single", layer=2).fit(feats, DIMS)


def test_weighted_scales_each_blocks_squared_distance_by_weight_squared(feats):
    state = Fusion.from_config({"mode": "weighted", "weights": [2.0, 0.5]}).fit(feats, DIMS)
    out = state.apply(feats).reshape(-1, 8)
    raw = np.asarray(feats, np.float32).reshape(-1, 8)
    fused_sq = np.square(out[0] - out[1]).sum()
    expected = 4 * np.square(raw[0, :3] - raw[1, :3]).sum()
    expected += 0.25 * np.square(raw[0, 3:] - raw[1, 3:]).sum()
    assert fused_sq == pytest.approx(expected, rel=1e-5)
    dropped = Fusion.from_config({"mode": "weighted", "weights": [0, 1]}).fit(feats, DIMS)
    assert dropped.output_dim == 5
    with pytest.raises(ConfigError, match="one entry per tap"):
        Fusion.from_config({"mode": "weighted", "weights": [1]}).fit(feats, DIMS)


def test_adaptive_equalises_block_variance_and_keeps_the_total(feats, monkeypatch):
    monkeypatch.setattr(fusion_mod, "CHUNK_ELEMS", 200)  # several chunks over the memmap
    raw = np.asarray(feats, np.float64).reshape(-1, 8)
    before = [raw[:, :3].var(0).sum(), raw[:, 3:].var(0).sum()]
    np.testing.assert_allclose(block_variances(feats, DIMS), before, rtol=1e-9)
    state = Fusion("adaptive").fit(feats, DIMS)
    out = state.apply(feats).reshape(-1, 8).astype(np.float64)
    after = [out[:, :3].var(0).sum(), out[:, 3:].var(0).sum()]
    assert after[0] == pytest.approx(after[1], rel=1e-5)
    assert sum(after) == pytest.approx(sum(before), rel=1e-5)


def test_state_round_trips_through_json_and_selects_channels(feats):
    state = Fusion.from_config({"mode": "weighted", "weights": [2.0, 1.0]}).fit(feats, DIMS)
    again = FusionState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state and state.to_dict()["output_dim"] == 8
    picked = again.apply(feats, select=np.array([1, 4]))
    np.testing.assert_allclose(picked, np.asarray(feats, np.float32)[..., [1, 4]] * [2.0, 1.0])
    with pytest.raises(CacheError, match="channels"):
        state.apply(np.zeros((1, 2, 2, 7), np.float16))
