"""Readers for the non-image modalities of a weld run: video, audio, welding sensors, photos.

Each reader turns one file into an array and raises :class:`~iadbench.errors.DataError` naming
the file for anything unreadable, so a bad run fails with its name. The ``probe_*`` functions are
the cheap checks the manifest step runs on every file (headers and a first frame, never a whole
decode).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from iadbench.data.images import load_image
from iadbench.data.sensor_modes import NORMALISE_MODES
from iadbench.errors import DataError

SENSOR_SIGNALS = (
    "Pressure",
    "CO2 Weld Flow",
    "Feed",
    "Primary Weld Current",
    "Wire Consumed",
    "Secondary Weld Voltage",
)


# PyAV and soundfile are imported by the readers that use them: every manifest job imports this
# module through the layout registry, and image datasets need neither.
def _av():
    import av

    return av


def _soundfile():
    import soundfile

    return soundfile


def _av_errors() -> tuple[type[BaseException], ...]:
    return (_av().FFmpegError, OSError, ValueError, IndexError, StopIteration)


def _sf_errors() -> tuple[type[BaseException], ...]:
    return (_soundfile().SoundFileError, RuntimeError, OSError, ValueError)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty (0 bytes)")
    return path


# --- video -------------------------------------------------------------------------------------


@dataclass
class Video:
    """Decoded frames of one video and which frame numbers they are."""

    frames: np.ndarray  # uint8 (T, H, W, 3) RGB
    fps: float
    indices: np.ndarray  # int64 (T,), frame numbers kept


@dataclass(frozen=True)
class VideoInfo:
    """What a header probe tells: frame count (0 when the container does not say), size, rate."""

    frames: int
    height: int
    width: int
    fps: float


def _video_stream(container, path: Path):
    if not container.streams.video:
        raise DataError(path, "no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "SLICE"  # frame threading reorders nothing but costs memory
    return stream


def _fps(stream, path: Path) -> float:
    rate = stream.average_rate or stream.base_rate or stream.guessed_rate
    if not rate or float(rate) <= 0:
        raise DataError(path, "video stream has no frame rate")
    return float(rate)


def _frame_count(container, stream) -> int:
    """Frames in the stream: the header's count, else one demux pass (no decoding)."""
    if stream.frames > 0:
        return int(stream.frames)
    count = sum(1 for packet in container.demux(stream) if packet.size)
    container.seek(0)
    return count


def probe_video(path: str | Path) -> VideoInfo:
    """Open the video and decode its first frame: catches missing streams and broken headers."""
    path = _existing(path)
    try:
        with _av().open(str(path)) as container:
            stream = _video_stream(container, path)
            fps = _fps(stream, path)
            frame = next(container.decode(stream))
            return VideoInfo(int(stream.frames), frame.height, frame.width, fps)
    except _av_errors() as exc:
        raise DataError(path, f"cannot read video ({exc or type(exc).__name__})") from exc


def _wanted(total: int, stride: int, count: int | None) -> np.ndarray:
    if count is not None:
        # uniformly spaced over the whole video; a video shorter than count repeats frames
        return np.rint(np.linspace(0, total - 1, count)).astype(np.int64)
    return np.arange(0, total, stride, dtype=np.int64)


def read_video(
    path: str | Path,
    *,
    stride: int = 1,
    count: int | None = None,
    size: tuple[int, int] | None = None,
) -> Video:
    """Decode the video file itself (never the run's photos) into RGB frames.

    ``count`` keeps that many uniformly spaced frames and overrides ``stride``, which otherwise
    keeps every ``stride``-th frame; ``size`` = (height, width) resizes (bilinear, swscale).
    """
    if stride < 1 or (count is not None and count < 1):
        raise ValueError(f"stride and count must be >= 1, got stride={stride}, count={count}")
    if size is not None and min(size) < 1:
        raise ValueError(f"size must be positive (height, width), got {size}")
    path = _existing(path)
    shape = {} if size is None else {"height": int(size[0]), "width": int(size[1])}
    try:
        with _av().open(str(path)) as container:
            stream = _video_stream(container, path)
            fps = _fps(stream, path)
            total = _frame_count(container, stream)
            if total == 0:
                raise DataError(path, "video has no frames")
            wanted = _wanted(total, stride, count)
            keep, last = set(wanted.tolist()), int(wanted[-1])
            kept: dict[int, np.ndarray] = {}
            decoded = 0
            for number, frame in enumerate(container.decode(stream)):
                decoded = number + 1
                if number in keep:
                    kept[number] = frame.to_ndarray(format="rgb24", **shape)
                if number >= last:
                    break
    except _av_errors() as exc:
        raise DataError(path, f"cannot decode video ({exc or type(exc).__name__})") from exc
    if last not in kept:
        raise DataError(path, f"video header says {total} frames but only {decoded} decode")
    frames = np.stack([kept[int(i)] for i in wanted])
    return Video(frames=frames, fps=fps, indices=wanted)


# --- audio -------------------------------------------------------------------------------------


@dataclass
class Audio:
    """Mono samples at the file's own rate (never resampled: 16 kHz stays 16 kHz)."""

    samples: np.ndarray  # float32 (n,)
    rate: int


def probe_audio(path: str | Path):
    """The audio header (rate, channels, frames); a file without samples is an error."""
    path = _existing(path)
    try:
        info = _soundfile().info(str(path))
    except _sf_errors() as exc:
        raise DataError(path, f"cannot read audio ({exc})") from exc
    if info.frames <= 0:
        raise DataError(path, "audio has no samples")
    return info


def read_audio(path: str | Path) -> Audio:
    """Read the whole file as float32 mono; several channels are averaged."""
    path = _existing(path)
    try:
        data, rate = _soundfile().read(str(path), dtype="float32", always_2d=True)
    except _sf_errors() as exc:
        raise DataError(path, f"cannot decode audio ({exc})") from exc
    if data.shape[0] == 0:
        raise DataError(path, "audio has no samples")
    return Audio(samples=np.ascontiguousarray(data.mean(axis=1), dtype=np.float32), rate=int(rate))


# --- welding sensors ---------------------------------------------------------------------------


def _sensor_table(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot parse sensor CSV ({exc})") from exc
    table.columns = [str(name).strip() for name in table.columns]
    missing = [name for name in ("Date", "Time", *SENSOR_SIGNALS) if name not in table.columns]
    if missing:
        raise DataError(path, f"sensor CSV lacks column(s) {missing} (found {list(table.columns)})")
    return table


def check_sensor_header(path: str | Path) -> None:
    """Cheap check: the header names the date, time and six signals (names stripped)."""
    path = _existing(path)
    try:
        header = [str(name).strip() for name in pd.read_csv(path, nrows=0).columns]
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot parse sensor CSV ({exc})") from exc
    missing = [name for name in ("Date", "Time", *SENSOR_SIGNALS) if name not in header]
    if missing:
        raise DataError(path, f"sensor CSV lacks column(s) {missing} (found {header})")


def read_sensor(path: str | Path) -> pd.DataFrame:
    """``time_s`` (seconds since the first row, from Date + Time) and the six signals, float.

    Columns are found by name, never by dtype: ``Part No`` is numeric but an identifier, and
    picking numeric columns would shift every channel.
    """
    path = _existing(path)
    table = _sensor_table(path)
    if table.empty:
        raise DataError(path, "sensor CSV has no rows")
    stamps = (table["Date"].str.strip() + " " + table["Time"].str.strip()).tolist()
    try:
        when = pd.to_datetime(pd.Series(stamps))
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(path, f"cannot parse Date + Time ({exc})") from exc
    if when.isna().any():
        row = int(when.isna().to_numpy().argmax())
        raise DataError(path, f"row {row + 2}: empty Date or Time")
    time_s = (when - when.iloc[0]).dt.total_seconds().to_numpy(dtype=np.float64)
    if (np.diff(time_s) < 0).any():
        row = int(np.argmax(np.diff(time_s) < 0)) + 1
        raise DataError(path, f"row {row + 2}: time goes backwards")
    out = {"time_s": time_s}
    for name in SENSOR_SIGNALS:
        values = pd.to_numeric(table[name].str.strip(), errors="coerce")
        if values.isna().any():
            row = int(values.isna().to_numpy().argmax())
            raise DataError(
                path, f"row {row + 2}: column {name!r} is not a number ({table[name].iloc[row]!r})"
            )
        out[name] = values.to_numpy(dtype=np.float64)
    return pd.DataFrame(out)


def _untie(time_s: np.ndarray) -> np.ndarray:
    """Spread rows that share a timestamp evenly up to the next distinct one.

    Clocks coarser than the row rate repeat a timestamp; without this, interpolation would
    collapse those rows onto one instant.
    """
    distinct, start, counts = np.unique(time_s, return_index=True, return_counts=True)
    if len(distinct) == len(time_s):
        return time_s
    last_step = float(np.median(np.diff(distinct))) if len(distinct) > 1 else 1.0
    step = np.diff(distinct, append=distinct[-1] + last_step)
    out = time_s.astype(np.float64).copy()
    for value, first, n, width in zip(distinct, start, counts, step, strict=True):
        out[first : first + n] = value + width * np.arange(n) / n
    return out


def resample_sensor(frame: pd.DataFrame, length: int) -> np.ndarray:
    """float32 (length, 6): the signals linearly interpolated at ``length`` evenly spaced times.

    Interpolation runs on real time over the run's span, so a gap in the log stays a gap in time
    instead of being squeezed out as it would be by resampling row numbers.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    time_s = _untie(frame["time_s"].to_numpy(dtype=np.float64))
    grid = np.linspace(time_s[0], time_s[-1], length)
    columns = [np.interp(grid, time_s, frame[name].to_numpy(np.float64)) for name in SENSOR_SIGNALS]
    return np.stack(columns, axis=1).astype(np.float32)


def _floor(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """A constant channel (gas pressure often is) must not blow up to infinite z-scores."""
    return np.maximum(std, 1e-3 * np.maximum(1.0, np.abs(mean)))


def fit_sensor_stats(arrays: list[np.ndarray]) -> dict:
    """Per-channel mean and (floored) std over every time step of the training runs."""
    if not arrays:
        raise ValueError("no training arrays to fit sensor statistics on")
    stacked = np.concatenate([np.asarray(a, dtype=np.float64) for a in arrays], axis=0)
    mean = stacked.mean(axis=0)
    std = _floor(mean, stacked.std(axis=0))
    return {"mean": mean.tolist(), "std": std.tolist()}


def normalise_sensor(x: np.ndarray, mode: str = "train", stats: dict | None = None) -> np.ndarray:
    """z-score (length, channels) sensor data; float32.

    ``train`` (the default) uses the training runs' statistics, so a level shift such as a
    current spike or a voltage drop stays visible; ``sample`` z-scores each run by its own mean
    and std, which erases exactly those shifts and keeps only the shape of the signals.
    """
    x = np.asarray(x, dtype=np.float64)
    if mode == "train":
        if stats is None:
            raise ValueError("mode 'train' needs the training statistics (fit_sensor_stats)")
        mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
    elif mode == "sample":
        mean = x.mean(axis=0)
        std = _floor(mean, x.std(axis=0))
    else:
        raise ValueError(f"unknown sensor normalisation {mode!r} (known: {NORMALISE_MODES})")
    return ((x - mean) / std).astype(np.float32)


# --- post-weld photos --------------------------------------------------------------------------


def read_photo(
    path: str | Path, *, size: tuple[int, int], label_mask: list[int] | None
) -> np.ndarray:
    """uint8 (height, width, 3): the photo with the label box blanked, then resized (bilinear).

    The box ``[x0, y0, x1, y1]`` is in the photo's original pixels (clipped to the image) and is
    filled with the photo's mean colour: a black box would be a high-contrast edge that patch
    features notice, the mean colour is the least salient constant fill.
    """
    rgb = load_image(path)
    if label_mask is not None:
        x0, y0, x1, y1 = (int(v) for v in label_mask)
        rgb = rgb.copy()
        fill = np.rint(rgb.reshape(-1, 3).mean(axis=0)).astype(np.uint8)
        rgb[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = fill
    height, width = (int(v) for v in size)
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR))
