"""Late fusion of audio and video autoencoders: shapes, window scores, w chosen on VAL and
recorded, TRAIN z-scores, order by sample_id, determinism (synthetic in-memory embeddings)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from iadbench.errors import CacheError, ConfigError
from iadbench.features.embeddings import INDEX_COLUMNS, EmbeddingSet
from iadbench.methods.base import MethodInputs
from iadbench.methods.kinds import params_of
from iadbench.methods.late_fusion.autoencoders import (
    AudioAutoencoder,
    VideoAutoencoder,
    moving_max,
)
from iadbench.methods.late_fusion.method import LateFusion, best_weight
from iadbench.metrics.image import image_auroc

TINY = {
    "kind": "late_fusion",
    "audio_widths": [16, 16],
    "audio_bottleneck": 4,
    "audio_epochs": 2,
    "video_widths": [16, 8, 4],
    "video_epochs": 2,
    "video_lr": 0.01,
    "audio_lr": 0.01,
    "batch_size": 4,
    "video_batch_size": 64,
    "window_s": 1.0,
    "seed": 0,
}


def make_store(runs, split: str, role: str) -> EmbeddingSet:
    rows, tokens, offset = [], [], 0
    for sid, label, seq in runs:
        rows.append([sid, label, "x", split, 0, offset, len(seq), 0, 0])
        tokens.append(seq)
        offset += len(seq)
    meta = {"encoder": role, "modality": role, "dim": tokens[0].shape[1], "rate_hz": 4.0,
            "config_hash": role}  # fmt: skip
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    return EmbeddingSet(np.concatenate(tokens).astype(np.float16), index, meta)


def weld_split(split: str, labels: list[int], seed: int, audio_bad: bool = True):
    """Normal runs lie near a low-dimensional pattern; an anomaly adds a burst in one modality."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(7).normal(size=(2, 12))
    audio, video = [], []
    for i, label in enumerate(labels):
        sid = f"{split}{i:03d}"
        seqs = {}
        for role in ("audio", "video"):
            n = 24 + int(rng.integers(0, 6))
            seqs[role] = rng.normal(size=(n, 2)) @ basis + 0.05 * rng.normal(size=(n, 12))
        if label:
            seqs["audio" if audio_bad else "video"][5:10] += 3.0 * rng.normal(size=(5, 12))
        audio.append((sid, label, seqs["audio"]))
        video.append((sid, label, seqs["video"]))
    index = pd.DataFrame({"sample_id": [a[0] for a in audio], "label": labels, "split": split})
    return index, {"audio": make_store(audio, split, "audio"),
                   "video": make_store(video, split, "video")}  # fmt: skip


@pytest.fixture(scope="module")
def weld():
    return {
        "train": weld_split("train", [0] * 16, 1),
        "val": weld_split("val", [0] * 6 + [1] * 6, 2),
        "test": weld_split("test", [0] * 6 + [1] * 6, 3),
    }


def fit(weld, tmp_path, **overrides):
    method = LateFusion({**TINY, **overrides}, device="cpu")
    rows = pd.concat([weld["train"][0], weld["val"][0]], ignore_index=True)
    cached = {"embeddings": {"train": weld["train"][1], "val": weld["val"][1]}}
    state = method.fit(MethodInputs(weld["train"][0], rows=rows, cached=cached), tmp_path)
    return method, state


def test_autoencoders_keep_the_shape_and_published_dropouts():
    audio = AudioAutoencoder(10, [16, 16], 4)
    x = torch.randn(2, 10, 12)
    assert audio(x).shape == x.shape and audio.min_frames == 7
    assert isinstance(audio.decoder[-1], nn.PReLU) and isinstance(audio.encoder[0], nn.BatchNorm1d)
    video = VideoAutoencoder(2304, [512, 256, 128, 64, 64], 0.5)
    assert video(torch.randn(5, 2304)).shape == (5, 2304)
    layers = list(video.net)
    drops = [i for i, m in enumerate(layers) if isinstance(m, nn.Dropout)]
    widths_after = [layers[i + 1].out_features for i in drops]
    assert widths_after == [128, 64, 64, 2304]  # published: [Drop] before 128, 64, 64 and output


def test_same_padding_and_slope_match_a_hand_computation():
    """``audio_padding: same`` pads each (transposed) conv by one zero frame and
    ``audio_leaky_slope`` scales the negative part (the reimplementation's 0.2)."""
    net = AudioAutoencoder(1, [1], 1, padding="same", slope=0.2).eval()
    assert net.min_frames == 1
    with torch.no_grad():
        for m in [*net.encoder, *net.decoder]:
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                m.weight.fill_(1.0)
                m.bias.zero_()
    net.encoder[0].eps = 0.0  # running mean 0, var 1: BatchNorm is the identity
    # [1, -2, 3] -> conv [-1, 2, 1] -> leaky [-0.2, 2, 1] -> conv [1.8, 2.8, 3]
    # -> convT [4.6, 7.6, 5.8] -> convT [12.2, 18, 13.4] (all positive: PReLU keeps them)
    out = net(torch.tensor([[[1.0, -2.0, 3.0]]]))
    torch.testing.assert_close(out, torch.tensor([[[12.2, 18.0, 13.4]]]))


def test_moving_max_is_the_best_window_mean():
    errors = torch.tensor([0.0, 1.0, 5.0, 1.0, 0.0])
    assert moving_max(errors, 2) == 3.0
    assert moving_max(errors, 1) == 5.0
    assert moving_max(errors, 99) == pytest.approx(1.4)  # shorter than the window: whole run


def test_best_weight_follows_the_informative_modality():
    labels = np.array([0, 0, 0, 1, 1, 1])
    informative = np.array([0, 1, 2, 3, 4, 5.0])
    misleading = 100 * informative[::-1]  # only w = 1 (or 0, swapped) ranks perfectly
    assert best_weight(labels, informative, misleading) == (1.0, 1.0)
    assert best_weight(labels, misleading, informative) == (0.0, 1.0)


@pytest.mark.parametrize("audio_bad", [True, False])
def test_fit_picks_w_on_val_and_scores_in_manifest_order(weld, tmp_path, audio_bad):
    data = {**weld, "val": weld_split("val", [0] * 6 + [1] * 6, 2, audio_bad),
            "test": weld_split("test", [0] * 6 + [1] * 6, 3, audio_bad)}  # fmt: skip
    method, state = fit(data, tmp_path)
    assert state["w_from"] == "val" and state["w"] in np.round(np.linspace(0, 1, 101), 2)
    assert state["val_auroc"] >= max(state["val_auroc_audio"], state["val_auroc_video"])
    assert (state["val_auroc_audio"] > state["val_auroc_video"]) == audio_bad
    for role in ("audio", "video"):
        assert (tmp_path / role / "best.pt").is_file() and (
            tmp_path / role / "loss_log.csv"
        ).is_file()
        assert state["norm"][role]["std"] > 0

    index, stores = data["test"]
    scores, maps, extra = method.score(
        tmp_path, MethodInputs(index, cached={"embeddings": stores}), (1, 1)
    )
    assert maps is None and set(extra) == {"component_audio", "component_video"}
    w = state["w"]
    assert np.allclose(scores, w * extra["component_audio"] + (1 - w) * extra["component_video"])
    assert image_auroc(index["label"], scores) > 0.9
    backwards = index.iloc[::-1].reset_index(drop=True)
    again, _, extra_again = method.score(
        tmp_path, MethodInputs(backwards, cached={"embeddings": stores}), (1, 1)
    )
    assert np.allclose(again, scores[::-1])
    assert np.allclose(extra_again["component_video"], extra["component_video"][::-1])


def test_train_scores_are_z_scored_and_a_fixed_w_is_kept(weld, tmp_path):
    method, state = fit(weld, tmp_path, w=0.25)
    assert state["w"] == 0.25 and state["w_from"] == "config"
    index, stores = weld["train"]
    _, _, extra = method.score(tmp_path, MethodInputs(index, cached={"embeddings": stores}), (1, 1))
    for role in ("audio", "video"):
        z = extra[f"component_{role}"]
        assert abs(z.mean()) < 1e-6 and z.std() == pytest.approx(1.0, abs=1e-6)


def test_same_seed_same_state(weld, tmp_path):
    _, first = fit(weld, tmp_path / "a")
    _, second = fit(weld, tmp_path / "b")
    assert {k: first[k] for k in ("norm", "w", "val_auroc")} == {
        k: second[k] for k in ("norm", "w", "val_auroc")
    }
    for role in ("audio", "video"):
        a = torch.load(tmp_path / "a" / role / "best.pt", weights_only=True)
        b = torch.load(tmp_path / "b" / role / "best.pt", weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_missing_sample_and_short_audio_are_errors(weld, tmp_path):
    method, _ = fit(weld, tmp_path, audio_epochs=1, video_epochs=1)
    index, stores = weld["test"]
    ghost = pd.concat([index, pd.DataFrame({"sample_id": ["ghost"], "label": [0]})])
    with pytest.raises(CacheError, match="lack 1 sample"):
        method.score(tmp_path, MethodInputs(ghost, cached={"embeddings": stores}), (1, 1))
    short = {role: make_store([("s", 0, np.zeros((3, 12)))], "test", role)
             for role in ("audio", "video")}  # fmt: skip
    inputs = MethodInputs(pd.DataFrame({"sample_id": ["s"], "label": [0]}),
                          cached={"embeddings": short})  # fmt: skip
    with pytest.raises(CacheError, match="fewer than the 7 frames"):
        method.score(tmp_path, inputs, (1, 1))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"w": 1.5}, r"w: 1.5 is greater than the maximum of 1"),
        ({"w": "test"}, r"w: 'test' .*allowed: number in \[0, 1\] or val"),
        ({"video_widths": []}, "video_widths"),
        ({"encoders": {"audio": "a"}}, r"encoders: 'video' is a required property"),
        ({"audio_padding": "full"}, "audio_padding"),
        ({"audio_leaky_slope": 1.0}, "audio_leaky_slope"),
    ],
)
def test_bad_parameters_are_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        params_of({**TINY, **change})
