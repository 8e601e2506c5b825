"""Per-modality embedding stores: ragged layout, native-rate audio frames, raw sensors, photo
grids with the label box, video frame choice, and tiny transformers models loaded offline."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import soundfile

from iadbench.config import check_references
from iadbench.data.manifest import build_manifest
from iadbench.data.media import read_sensor, read_video, resample_sensor
from iadbench.data.weld_demo import LABEL_BOX, generate_weld_demo
from iadbench.errors import CacheError, ConfigError, DataError
from iadbench.features import encode_vision
from iadbench.features.embeddings import (
    INDEX_COLUMNS,
    EmbeddingSet,
    load_embeddings,
    save_embeddings,
)
from iadbench.features.modalities import EncoderConfig, check_encoder
from iadbench.pipeline.embeddings import cached_embeddings, embed

BACKBONES = {"r18": {"model": "resnet18", "weights": "random"}}
MASKED = {"layout": "weld", "label_mask": {"box": list(LABEL_BOX)}}


@pytest.fixture(scope="module")
def weld(tmp_path_factory) -> Path:
    """Manifest of a tiny synthetic weld set: 2 train runs, 5 val and 5 test runs."""
    root = tmp_path_factory.mktemp("weld")
    generate_weld_demo(root / "data", n_train=2, n_test_good=1, n_per_defect=1)
    cfg = {"layout": "weld", "root": str(root / "data"), "categories": "all"}
    frame = build_manifest("weld", cfg)
    frame.to_parquet(root / "manifest.parquet")
    return root / "manifest.parquet"


def run_embed(weld, tmp_path, entry, dataset=None, backbones=BACKBONES, split="train", name="e"):
    npy, parquet = tmp_path / f"{name}.npy", tmp_path / f"{name}.parquet"
    embed(weld, dataset or {"layout": "weld"}, name, entry, backbones, "weld", split, npy,
          parquet, device="cpu")  # fmt: skip
    cfg = EncoderConfig.from_config(entry, backbones, dataset or {"layout": "weld"})
    return load_embeddings(npy, parquet, expected_hash=cfg.hash())


def runs(weld, split="train") -> pd.DataFrame:
    frame = pd.read_parquet(weld)
    return frame[frame["split"] == split].reset_index(drop=True)


# --- store -------------------------------------------------------------------------------------


def ragged(tmp_path):
    tokens = np.arange(14 * 3, dtype=np.float32).reshape(14, 3)
    index = pd.DataFrame(
        {
            "sample_id": ["a", "b", "b"],
            "label": np.int8([0, 1, 1]),
            "defect_type": ["good", "pore", "pore"],
            "split": "test",
            "view": [0, 0, 1],
            "offset": [0, 5, 9],
            "length": [5, 4, 5],
            "grid_h": [0, 2, 1],
            "grid_w": [0, 2, 5],
        }
    )
    meta = {"encoder": "x", "modality": "photo", "dim": 3, "config_hash": "abc"}
    npy, parquet = tmp_path / "s.npy", tmp_path / "s.parquet"
    save_embeddings(npy, parquet, tokens, index, meta)
    return tokens, npy, parquet


def test_store_round_trip_keeps_ragged_sequences_and_views(tmp_path):
    tokens, npy, parquet = ragged(tmp_path)
    store = load_embeddings(npy, parquet, expected_hash="abc")
    assert isinstance(store, EmbeddingSet) and isinstance(store.tokens, np.memmap)
    assert store.tokens.dtype == np.float16 and list(store.index.columns) == INDEX_COLUMNS
    assert store.meta["modality"] == "photo" and store.sample_ids() == ["a", "b"]
    assert store.rows_of("b") == [1, 2]
    np.testing.assert_array_equal(store.sequence(2), tokens[9:14])
    assert store.sequence(0).shape == (5, 3) and store.sequence(0).dtype == np.float32


def test_store_refuses_another_config_and_a_broken_index(tmp_path):
    _, npy, parquet = ragged(tmp_path)
    with pytest.raises(CacheError, match=rf"{parquet}.*config abc, expected def"):
        load_embeddings(npy, parquet, expected_hash="def")
    index = load_embeddings(npy, parquet).index.assign(length=[5, 4, 6])
    with pytest.raises(CacheError, match="past the 14 stored tokens"):
        save_embeddings(npy, parquet, np.zeros((14, 3)), index, {"dim": 3})


# --- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"modality": "smell"}, "not one of"),
        ({"modality": "sensor", "size": [8, 8]}, r"sensor encoders take no \['size'\]"),
        ({"modality": "photo"}, "exactly one of backbone: or hf:"),
        ({"modality": "video", "backbone": "nope"}, "backbone 'nope' is not defined"),
        ({"modality": "audio", "features": "stft", "n_mels": 8}, "n_mels is for features"),
        ({"modality": "audio", "hf": {"path": "m"}, "hop_s": 0.01}, "drop features"),
        ({"modality": "video", "backbone": "r18", "frames": {}}, "one of stride: or count:"),
    ],
)
def test_encoder_options_must_fit_the_modality(entry, message):
    with pytest.raises(ConfigError, match=message):
        check_encoder(entry, BACKBONES)


def test_defaults_are_written_out_and_checked_at_start_up():
    assert check_encoder({"modality": "audio"}, {}) == {
        "modality": "audio", "features": "logmel", "window_s": 0.085, "hop_s": 0.043,
        "n_mels": 64,
    }  # fmt: skip
    assert check_encoder({"modality": "sensor"}, {})["length"] == 256
    config = {
        "datasets": {"w": {"layout": "weld", "root": "w", "categories": "all"}},
        "backbones": BACKBONES,
        "methods": {},
        "encoders": {"v": {"modality": "video", "backbone": "r50"}},
    }
    with pytest.raises(ConfigError, match="encoder 'v': backbone 'r50'"):
        check_references(config)


# --- audio and sensors -------------------------------------------------------------------------


def test_audio_frames_use_the_native_rate(weld, tmp_path):
    store = run_embed(weld, tmp_path, {"modality": "audio"})
    hop, n_fft = round(0.043 * 16000), round(0.085 * 16000)
    assert store.meta["sample_rate"] == 16000
    assert (store.meta["hop_samples"], store.meta["n_fft"]) == (hop, n_fft) == (688, 1360)
    assert store.meta["rate_hz"] == pytest.approx(16000 / 688)
    assert store.meta["dim"] == 64 and store.tokens.shape[1] == 64
    for row, path in enumerate(runs(weld)["audio_path"]):
        n = soundfile.info(path).frames
        assert store.index["length"].iat[row] == 1 + (n - n_fft) // hop
    stft = run_embed(weld, tmp_path, {"modality": "audio", "features": "stft"}, name="s")
    assert stft.meta["dim"] == n_fft // 2 + 1


def write_avi(path: Path, fps: int) -> Path:
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width, stream.pix_fmt = 16, 16, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize(
    "column, entry, message",
    [
        ("audio_path", {"modality": "audio"}, "8000 Hz.*16000 Hz"),
        ("video_path", {"modality": "video", "backbone": "r18"}, "25 fps.*10 fps"),
    ],
)
def test_a_split_mixing_rates_is_refused(weld, tmp_path, column, entry, message):
    frame = runs(weld)
    if column == "audio_path":
        odd = tmp_path / "slow.flac"
        soundfile.write(odd, np.zeros(8000, np.float32), 8000, format="FLAC")
    else:
        odd = write_avi(tmp_path / "fast.avi", 25)
    frame.loc[1, column] = str(odd)
    frame.to_parquet(tmp_path / "mixed.parquet")
    with pytest.raises(DataError, match=message):
        run_embed(tmp_path / "mixed.parquet", tmp_path, entry)


def test_sensor_store_holds_raw_resampled_signals(weld, tmp_path):
    store = run_embed(weld, tmp_path, {"modality": "sensor", "length": 32})
    assert store.tokens.shape == (2 * 32, 6) and store.meta["rate_hz"] is None
    assert store.index["length"].tolist() == [32, 32]
    raw = resample_sensor(read_sensor(runs(weld)["sensor_path"].iat[1]), 32)
    np.testing.assert_allclose(store.sequence(1), raw, rtol=1e-3)  # not normalised


# --- photos and video --------------------------------------------------------------------------


def test_photo_store_has_one_grid_per_view_and_blanks_the_label(weld, tmp_path, monkeypatch):
    boxes = []
    read = encode_vision.read_photo
    monkeypatch.setattr(
        encode_vision,
        "read_photo",
        lambda path, size, label_mask: (
            boxes.append(label_mask) or read(path, size=size, label_mask=label_mask)
        ),
    )
    entry = {"modality": "photo", "backbone": "r18", "size": [32, 64], "batch_size": 3}
    store = run_embed(weld, tmp_path, entry, dataset=MASKED)
    assert boxes == [list(LABEL_BOX)] * 10
    assert store.index["view"].tolist() == [0, 1, 2, 3, 4] * 2
    assert set(store.index["grid_h"]) == {4} and set(store.index["grid_w"]) == {8}
    assert store.meta["layer_dims"] == [128, 256] and store.tokens.shape == (10 * 32, 384)
    assert store.meta["identity"]["label_mask"] == list(LABEL_BOX)
    again = run_embed(weld, tmp_path, entry, dataset=MASKED, name="again")
    np.testing.assert_array_equal(again.tokens, store.tokens)  # deterministic
    plain = run_embed(weld, tmp_path, entry, name="plain")
    assert plain.meta["config_hash"] != store.meta["config_hash"]
    assert not np.array_equal(plain.tokens, store.tokens)


@pytest.mark.parametrize("frames", [{"stride": 5}, {"count": 3}])
def test_video_keeps_one_pooled_token_per_chosen_frame(weld, tmp_path, frames):
    entry = {"modality": "video", "backbone": "r18", "frames": frames, "size": [32, 48]}
    store = run_embed(weld, tmp_path, entry)
    totals = [len(read_video(p).indices) for p in runs(weld)["video_path"]]
    if "stride" in frames:
        assert store.index["length"].tolist() == [math.ceil(t / 5) for t in totals]
        assert store.meta["rate_hz"] == pytest.approx(10 / 5)
    else:
        assert store.index["length"].tolist() == [3, 3] and store.meta["rate_hz"] is None
    assert store.meta["dim"] == 256  # resnet18's layer3, globally averaged


# --- transformers models from a local folder ---------------------------------------------------


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny random DINOv2, AST (with its extractor at 16 and 8 kHz) and V-JEPA 2 folders."""
    import torch
    from transformers import (
        ASTConfig,
        ASTFeatureExtractor,
        ASTModel,
        Dinov2Config,
        Dinov2Model,
        VJEPA2Config,
        VJEPA2Model,
    )

    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    small = {"hidden_size": 32, "num_attention_heads": 2}
    Dinov2Model(
        Dinov2Config(
            **small, num_hidden_layers=2, intermediate_size=64, patch_size=8, image_size=32
        )  # fmt: skip
    ).save_pretrained(root / "dino")
    ast = {"num_mel_bins": 16, "max_length": 64}
    for name, rate in (("ast", 16000), ("ast8k", 8000)):
        ASTModel(
            ASTConfig(**small, **ast, num_hidden_layers=1, intermediate_size=64)
        ).save_pretrained(root / name)
        ASTFeatureExtractor(**ast, sampling_rate=rate).save_pretrained(root / name)
    VJEPA2Model(
        VJEPA2Config(
            **small,
            crop_size=32,
            frames_per_clip=4,
            tubelet_size=2,
            patch_size=8,
            num_hidden_layers=1,
            mlp_ratio=2,
            pred_hidden_size=16,
            pred_num_hidden_layers=1,
            pred_num_attention_heads=2,
        )  # fmt: skip
    ).save_pretrained(root / "vjepa2")
    return {p.name: p for p in root.iterdir()}


def test_hf_photo_model_keeps_patch_tokens_of_the_chosen_layers(weld, tmp_path, hf_models):
    entry = {"modality": "photo", "hf": {"path": str(hf_models["dino"])}, "layers": [0, -1],
             "size": [32, 64]}  # fmt: skip
    store = run_embed(weld, tmp_path, entry, dataset=MASKED)
    assert store.meta["layer_dims"] == [32, 32] and store.meta["dim"] == 64
    assert set(zip(store.index["grid_h"], store.index["grid_w"])) == {(4, 8)}
    assert store.index["length"].tolist() == [32] * 10  # no CLS token
    assert store.meta["identity"]["hf"].startswith("hf:dino:sha256=")


def test_hf_audio_model_gives_evenly_spaced_time_tokens(weld, tmp_path, hf_models):
    store = run_embed(weld, tmp_path, {"modality": "audio", "hf": {"path": str(hf_models["ast"])}})
    assert store.meta["rate_hz"] == pytest.approx(10.0) and store.meta["resampled_from"] is None
    for row, path in enumerate(runs(weld)["audio_path"]):
        frames = 1 + (soundfile.info(path).frames - 400) // 160
        assert store.index["length"].iat[row] == (frames - 16) // 10 + 1
    entry = {"modality": "audio", "hf": {"path": str(hf_models["ast8k"])}, "batch_size": 2}
    resampled = run_embed(weld, tmp_path, entry, name="r")
    assert resampled.meta["sample_rate"] == 8000 and resampled.meta["resampled_from"] == 16000
    assert resampled.meta["rate_hz"] == pytest.approx(8000 / 1600)


def test_hf_video_model_gives_one_token_per_tubelet(weld, tmp_path, hf_models):
    entry = {"modality": "video", "hf": {"path": str(hf_models["vjepa2"])},
             "frames": {"stride": 2}, "size": [32, 32], "batch_size": 8}  # fmt: skip
    store = run_embed(weld, tmp_path, entry)
    totals = [len(read_video(p, stride=2).indices) for p in runs(weld)["video_path"]]
    assert store.index["length"].tolist() == [math.ceil(t / 2) for t in totals]
    assert store.meta["rate_hz"] == pytest.approx(10 / 2 / 2) and store.meta["dim"] == 32
    with pytest.raises(CacheError, match="computed with config"):
        cached_embeddings(
            tmp_path / "e.npy", tmp_path / "e.parquet", {**entry, "size": [32, 64]}, {},
            {"layout": "weld"},
        )  # fmt: skip
