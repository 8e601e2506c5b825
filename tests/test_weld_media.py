"""Readers of the weld modalities: video, audio, welding sensors, photos."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile
from PIL import Image

from iadbench.data.media import (
    SENSOR_SIGNALS,
    fit_sensor_stats,
    normalise_sensor,
    read_audio,
    read_photo,
    read_sensor,
    read_video,
    resample_sensor,
)
from iadbench.data.weld_demo import SENSOR_HEADER, _write_video
from iadbench.errors import DataError


def _ramp_video(tmp_path, count=12, size=(40, 64)):
    """Frames whose brightness encodes their number (decoded values stay close)."""
    frames = np.stack([np.full((*size, 3), 10 + 20 * i, dtype=np.uint8) for i in range(count)])
    path = tmp_path / "run" / "01-02-23-0001-00.avi"
    path.parent.mkdir()
    _write_video(path, frames)
    return path


def test_video_reader_decodes_the_avi_not_the_photos(tmp_path):
    path = _ramp_video(tmp_path)
    photos = path.parent / "images"
    photos.mkdir()
    for k in range(5):  # photos of another size must not be taken for frames
        Image.new("RGB", (200, 90), (255, 0, 0)).save(photos / f"{k}.jpg")
    video = read_video(path)
    assert video.frames.shape == (12, 40, 64, 3) and video.frames.dtype == np.uint8
    assert video.fps == 10.0
    assert video.indices.tolist() == list(range(12))
    means = video.frames.reshape(12, -1).mean(axis=1)
    assert np.allclose(means, 10 + 20 * np.arange(12), atol=6)


def test_video_stride_count_and_size(tmp_path):
    path = _ramp_video(tmp_path)
    assert read_video(path, stride=5).indices.tolist() == [0, 5, 10]
    picked = read_video(path, stride=5, count=4, size=(20, 32))  # count wins
    assert picked.indices.tolist() == [0, 4, 7, 11]
    assert picked.frames.shape == (4, 20, 32, 3)
    means = picked.frames.reshape(4, -1).mean(axis=1)
    assert np.allclose(means, 10 + 20 * picked.indices, atol=6)


def test_unreadable_video_names_the_file(tmp_path):
    bad = tmp_path / "x.avi"
    bad.write_bytes(b"RIFF" + b"\0" * 200)
    with pytest.raises(DataError, match="x.avi"):
        read_video(bad)
    with pytest.raises(DataError, match="does not exist"):
        read_video(tmp_path / "gone.avi")


def test_audio_keeps_the_native_rate_and_averages_channels(tmp_path):
    stereo = np.stack([np.full(1600, 0.5), np.full(1600, -0.25)], axis=1)
    soundfile.write(tmp_path / "a.flac", stereo, 16_000, subtype="PCM_16", format="FLAC")
    audio = read_audio(tmp_path / "a.flac")
    assert audio.rate == 16_000 and audio.samples.dtype == np.float32
    assert audio.samples.shape == (1600,)
    assert np.allclose(audio.samples, 0.125, atol=1e-4)
    (tmp_path / "b.flac").write_bytes(b"fLaC junk")
    with pytest.raises(DataError, match="b.flac"):
        read_audio(tmp_path / "b.flac")


def _sensor_csv(path, rows, header=SENSOR_HEADER):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def _rows(times, current, part_no=77):
    return [
        ["2023-01-04", f"10:00:{t:06.3f}", part_no, 4.5, 15, 8, c, 10 * i, 21, ""]
        for i, (t, c) in enumerate(zip(times, current, strict=True))
    ]


def test_sensor_columns_by_stripped_name_never_part_no(tmp_path):
    assert "Pressure ," in SENSOR_HEADER  # the trailing spaces of the release
    path = _sensor_csv(tmp_path / "s.csv", _rows([1.0, 1.116, 1.232], [150, 151, 152]))
    frame = read_sensor(path)
    assert list(frame.columns) == ["time_s", *SENSOR_SIGNALS]
    assert np.allclose(frame["time_s"], [0.0, 0.116, 0.232])
    assert frame["Primary Weld Current"].tolist() == [150, 151, 152]
    assert frame["Pressure"].tolist() == [4.5] * 3  # not Part No (77)
    assert all(frame.dtypes == np.float64)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h, r: (h.replace("Feed ,", ""), [x[:5] + x[6:] for x in r]), "Feed"),
        (lambda h, r: (h, [r[0], [*r[1][:6], "n/a", *r[1][7:]]]), "not a number"),
        (lambda h, r: (h, [r[0], ["2023-01-04", "noon", *r[1][2:]]]), "Date"),
    ],
)
def test_bad_sensor_files_name_the_file(tmp_path, mutate, message):
    header, rows = mutate(SENSOR_HEADER, _rows([1.0, 1.2], [150, 151]))
    path = _sensor_csv(tmp_path / "bad.csv", rows, header)
    with pytest.raises(DataError, match=message) as info:
        read_sensor(path)
    assert info.value.path == str(path)


def test_resampling_interpolates_on_real_time_across_a_gap():
    frame = pd.DataFrame({"time_s": [0.0, 1.0, 2.0, 8.0]})
    for name in SENSOR_SIGNALS:
        frame[name] = [0.0, 1.0, 2.0, 8.0]  # linear in time, not in row number
    out = resample_sensor(frame, 9)
    assert out.shape == (9, 6) and out.dtype == np.float32
    assert np.allclose(out[:, 0], np.arange(9))


def test_rows_sharing_a_coarse_timestamp_are_spread_in_time():
    frame = pd.DataFrame({"time_s": [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]})
    for name in SENSOR_SIGNALS:
        frame[name] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # one step per half second
    assert np.allclose(resample_sensor(frame, 6)[:, 0], [0, 1, 2, 3, 4, 5])


def test_train_normalisation_keeps_a_level_shift_that_sample_erases():
    rng = np.random.default_rng(0)
    train = [150 + rng.normal(0, 2, (64, 6)) for _ in range(5)]
    stats = fit_sensor_stats(train)
    shifted = 200 + rng.normal(0, 2, (64, 6))  # e.g. a current far above the set point
    assert normalise_sensor(shifted, "train", stats).mean() > 10
    assert abs(normalise_sensor(shifted, "sample", None).mean()) < 1e-3
    with pytest.raises(ValueError, match="training statistics"):
        normalise_sensor(shifted, "train", None)


def test_constant_channels_get_a_floored_std():
    stats = fit_sensor_stats([np.full((10, 6), 4.5)])
    assert min(stats["std"]) > 0
    assert np.isfinite(normalise_sensor(np.full((3, 6), 4.6), "train", stats)).all()


def test_photo_label_box_is_blanked_in_original_pixels_then_resized(tmp_path):
    rgb = np.full((90, 200, 3), 100, dtype=np.uint8)
    rgb[6:28, 156:194] = 255  # the label
    Image.fromarray(rgb).save(tmp_path / "p.png")
    masked = read_photo(tmp_path / "p.png", size=(45, 100), label_mask=[156, 6, 194, 28])
    kept = read_photo(tmp_path / "p.png", size=(45, 100), label_mask=None)
    assert masked.shape == (45, 100, 3)
    assert masked.max() < 120 < kept.max()
