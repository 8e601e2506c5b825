"""A small synthetic weld dataset in exactly the Intel release's layout (see :mod:`.weld`).

Why: the multimodal methods need runs with video, audio, sensors and photos that any machine
can generate, in the same files and formats as the gated release, so the whole weld chain can
be exercised without it. Each defect class leaves a trace in some modalities and not others,
so no single modality detects everything and fusion has something to gain:

=================  =================================================  ==========================
class (code)       trace                                              modalities
=================  =================================================  ==========================
porosity (03)      crackle bursts; pores on the bead                  audio, photos
burnthrough (02)   a current spike; a hole through the bead           sensors, photos
lack_of_fusion     voltage dropouts; the arc dims at the same times   sensors, video
(07)
spatter (09)       pops; flying sparks at the same times; dots        audio, video, photos
                   beside the bead
=================  =================================================  ==========================

Nuisance variation keeps every modality imperfect: per-session current, voltage, speed, arc
tone and brightness; per-run noise, stray pops in the audio, dust specks on the photos, time
gaps in the sensor log. Photos are shown in only some of a run's five views.

Every photo carries the printed paper label with the class code at :data:`LABEL_BOX`
(``[x0, y0, x1, y1]`` in photo pixels), like the release's label leak; configs set
``label_mask: {box: LABEL_BOX}`` to blank it.

Everything is seeded per (seed, split, class, session or run index), so the same seed gives
byte-identical files (single-threaded encoders, no timestamps); the tree is written atomically.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import soundfile
from PIL import Image
from scipy import ndimage, signal

from iadbench.data.weld import CLASS_CODES, MANIFEST, MANIFEST_COLUMNS
from iadbench.io import atomic_dir

DEFECTS = {"porosity": "03", "burnthrough": "02", "lack_of_fusion": "07", "spatter": "09"}
_CATEGORY_NAMES = {
    "good": "Good",
    "porosity": "Porosity",
    "burnthrough": "Burnthrough",
    "lack_of_fusion": "Lack_of_Fusion",
    "spatter": "Spatter",
}
VIDEO_SIZE = (60, 96)  # (height, width); the release's 960x600 scaled by 1/10
FPS = 10
AUDIO_RATE = 16_000  # the public release's rate
SENSOR_RATE = 8.6
PHOTO_SIZE = (90, 200)  # (height, width); the release's 2000x900 scaled by 1/10
N_PHOTOS = 5
LABEL_BOX = (156, 6, 194, 28)  # [x0, y0, x1, y1] of the printed label on every photo
# trailing spaces on some names, as in the release's files
SENSOR_HEADER = (
    "Date,Time,Part No,Pressure ,CO2 Weld Flow,Feed ,Primary Weld Current,Wire Consumed ,"
    "Secondary Weld Voltage,Remarks"
)
RUNS_PER_SESSION = 4
CLASS_CODES_BY_NAME = {name: code for code, name in CLASS_CODES.items()}
_SPLIT_CODES = {"TRAIN": 0, "VAL": 1, "TEST": 2}
_DIGITS = {  # 3x5 bitmap font for the label (no font files, so no platform dependence)
    "0": "111101101101111",
    "1": "010110010010111",
    "2": "111001111100111",
    "3": "111001111001111",
    "4": "101101111001001",
    "5": "111100111001111",
    "6": "111100111101111",
    "7": "111001001001001",
    "8": "111101111101111",
    "9": "111101111001111",
}


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


@dataclass(frozen=True)
class Session:
    """Set points and looks shared by the runs of one session folder."""

    directory: str
    date: dt.date
    current_a: float
    voltage_v: float
    speed_cpm: float
    thickness_mm: int
    brightness: float
    tone_hz: float


@dataclass
class Events:
    """Times (s) of the defect's events, shared by the modalities that show them."""

    spike: tuple[float, float] | None = None  # burnthrough current spike (start, end)
    dropouts: list[tuple[float, float]] = field(default_factory=list)  # lack of fusion
    pops: list[float] = field(default_factory=list)  # spatter


# --- signals -----------------------------------------------------------------------------------


def _events(defect: str, duration: float, rng: np.random.Generator) -> Events:
    ev = Events()
    lo, hi = 0.3, duration - 0.4
    if defect == "burnthrough":
        start = float(rng.uniform(lo, hi - 0.4))
        ev.spike = (start, start + float(rng.uniform(0.3, 0.5)))
    elif defect == "lack_of_fusion":
        for start in np.sort(rng.uniform(lo, hi, size=int(rng.integers(2, 5)))):
            ev.dropouts.append((float(start), float(start + rng.uniform(0.15, 0.3))))
    elif defect == "spatter":
        ev.pops = sorted(float(t) for t in rng.uniform(lo, hi, size=int(rng.integers(6, 11))))
    return ev


def _in_any(t: np.ndarray | float, spans: list[tuple[float, float]]) -> np.ndarray:
    hit = np.zeros(t.shape, dtype=bool)
    for start, end in spans:
        hit |= (t >= start) & (t < end)
    return hit


def _sensor_rows(
    session: Session, run_no: int, defect: str, duration: float, ev: Events, rng
) -> list[list[str]]:
    """~8.6 Hz rows with jittered spacing and, in half of the runs, one gap in the log."""
    steps = np.full(int(duration * SENSOR_RATE), 1.0 / SENSOR_RATE)
    steps += rng.normal(0.0, 0.004, size=steps.size)
    if rng.random() < 0.5:
        steps[int(rng.integers(3, steps.size - 3))] += float(rng.uniform(0.4, 0.9))
    t = np.concatenate([[0.0], np.cumsum(steps)])
    t = t[t <= duration]
    n = t.size
    wander = np.sin(2 * np.pi * t / float(rng.uniform(1.5, 3.0)) + float(rng.uniform(0, 6.3)))
    current = session.current_a + 2.0 * wander + rng.normal(0, 2.5, n)
    voltage = session.voltage_v + rng.normal(0, 0.25, n)
    if ev.spike is not None:
        current += _in_any(t, [ev.spike]) * float(rng.uniform(40, 60))
    voltage -= _in_any(t, ev.dropouts) * rng.uniform(4.0, 7.0, n)
    feed = 0.05 * session.current_a + rng.normal(0, 0.05, n)
    wire = np.cumsum(feed * np.diff(t, prepend=0.0) / 60.0 * 1000.0)  # mm
    pressure = 4.5 + rng.normal(0, 0.02, n)
    flow = 15.0 + rng.normal(0, 0.2, n)
    start = dt.datetime.combine(session.date, dt.time(8)) + dt.timedelta(
        seconds=int(rng.integers(0, 8 * 3600))
    )
    rows = []
    for i in range(n):
        when = start + dt.timedelta(microseconds=int(round(t[i] * 1e6)))
        rows.append(
            [
                when.strftime("%Y-%m-%d"),
                when.strftime("%H:%M:%S.%f")[:-3],
                str(1000 + run_no),
                f"{pressure[i]:.3f}",
                f"{flow[i]:.2f}",
                f"{feed[i]:.3f}",
                f"{current[i]:.1f}",
                f"{wire[i]:.1f}",
                f"{voltage[i]:.2f}",
                "" if i else "start",
            ]
        )
    return rows


def _damped(length: int, freq: float, decay_s: float, rng) -> np.ndarray:
    t = np.arange(length) / AUDIO_RATE
    return np.sin(2 * np.pi * freq * t + float(rng.uniform(0, 6.3))) * np.exp(-t / decay_s)


def _add(audio: np.ndarray, at: int, burst: np.ndarray) -> None:
    end = min(audio.size, at + burst.size)
    audio[at:end] += burst[: end - at]


def _audio(session: Session, defect: str, duration: float, ev: Events, rng) -> np.ndarray:
    """Arc hiss and a session tone; porosity crackles, spatter pops, stray pops anywhere."""
    n = int(duration * AUDIO_RATE)
    t = np.arange(n) / AUDIO_RATE
    envelope = np.clip(t / 0.15, 0, 1) * np.clip((duration - t) / 0.15, 0, 1)
    hiss = signal.lfilter([0.4], [1.0, -0.6], rng.normal(0, 1, n))
    hiss *= float(rng.uniform(0.04, 0.06)) / hiss.std()
    tone = 0.02 * np.sin(2 * np.pi * session.tone_hz * t) + 0.01 * np.sin(
        4 * np.pi * session.tone_hz * t + float(rng.uniform(0, 6.3))
    )
    audio = envelope * (hiss + tone)
    for at in rng.uniform(0.2, duration - 0.2, size=rng.poisson(0.8)):  # stray pops
        _add(audio, int(at * AUDIO_RATE), rng.uniform(0.08, 0.18) * _damped(160, 1500, 0.004, rng))
    if defect == "porosity":
        for start in rng.uniform(0.3, duration - 0.5, size=int(rng.integers(3, 6))):
            length = float(rng.uniform(0.1, 0.2))
            for at in rng.uniform(start, start + length, size=rng.poisson(250 * length)):
                click = rng.uniform(0.12, 0.3) * np.exp(-np.arange(48) / 16) * rng.choice([-1, 1])
                _add(audio, int(at * AUDIO_RATE), click)
    for at in ev.pops:
        pop = rng.uniform(0.3, 0.5) * _damped(240, float(rng.uniform(1000, 3000)), 0.005, rng)
        _add(audio, int(at * AUDIO_RATE), pop)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


# --- pictures ----------------------------------------------------------------------------------


def _disc(shape: tuple[int, int], cy: float, cx: float, radius: float) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def _frames(session: Session, defect: str, duration: float, ev: Events, rng) -> np.ndarray:
    """uint8 (T, H, W, 3): a fixed arc over a bead that scrolls by; flicker and sparks."""
    h, w = VIDEO_SIZE
    count = int(round(duration * FPS))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = 24 + rng.normal(0, 1), 48 + rng.normal(0, 1)
    radius = float(rng.uniform(4, 6))
    plate = 25 + 10 * yy / h + ndimage.gaussian_filter(rng.normal(0, 6, (h, w)), 1.5)
    bead_rows = np.exp(-(((yy - cy - 12) / 5) ** 2))
    heat = np.exp(-np.clip(cx - xx, 0, None) / 25) * (xx <= cx + 2)
    frames = np.empty((count, h, w, 3), dtype=np.uint8)
    for i in range(count):
        t = i / FPS
        ripple = 0.5 + 0.5 * np.sin(2 * np.pi * (xx + session.speed_cpm * t) / 6)
        bead = bead_rows * (xx <= cx + 2) * (40 + 20 * ripple + 160 * heat)
        strength = float(rng.normal(1.0, 0.06))
        if _in_any(np.array([t, t + 0.05]), ev.dropouts).any():  # the frame's exposure
            strength *= float(rng.uniform(0.2, 0.4))
        arc = 255 * strength * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
        gray = session.brightness * (plate + bead + arc)
        rgb = np.stack([gray * 1.0, gray * 0.85, gray * 0.6], axis=-1)
        rgb[..., 2] += 0.6 * arc  # the arc itself is white-blue, the pool orange
        if any(abs(p - t) < 0.5 / FPS for p in ev.pops):
            for _ in range(int(rng.integers(3, 7))):
                angle, dist = rng.uniform(0, 2 * np.pi), rng.uniform(10, 25)
                spark = _disc((h, w), cy + dist * np.sin(angle), cx + dist * np.cos(angle), 1.2)
                rgb[spark] = (255, 230, 160)
        rgb += rng.normal(0, 3, rgb.shape)
        frames[i] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return frames


def _label(photo: np.ndarray, code: str) -> None:
    """Draw the paper label with the class code into LABEL_BOX, 3x scaled bitmap digits."""
    x0, y0, x1, y1 = LABEL_BOX
    photo[y0:y1, x0:x1] = (232, 232, 224)
    photo[y0, x0:x1] = photo[y1 - 1, x0:x1] = photo[y0:y1, x0] = photo[y0:y1, x1 - 1] = 60
    scale, left = 3, x0 + (x1 - x0 - 21) // 2
    top = y0 + (y1 - y0 - 15) // 2
    for k, digit in enumerate(code):
        bits = np.array([int(b) for b in _DIGITS[digit]], dtype=bool).reshape(5, 3)
        glyph = np.kron(bits, np.ones((scale, scale), dtype=bool))
        x = left + k * 12
        region = photo[top : top + 15, x : x + 9]
        region[glyph] = (20, 20, 20)


def _photo(session: Session, defect: str, shows: bool, code: str, rng) -> np.ndarray:
    """One post-weld view: plate, rippled bead, dust; the defect when ``shows``; the label."""
    h, w = PHOTO_SIZE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    level = session.brightness * float(rng.uniform(0.9, 1.1))
    plate = 130 + ndimage.gaussian_filter(rng.normal(0, 10, (h, w)), 2.0)
    centre, half = 50 + rng.normal(0, 2), float(rng.uniform(8, 11))
    across = np.clip(1 - ((yy - centre) / half) ** 2, 0, None)
    on_bead = across > 0
    ripple = np.sin(2 * np.pi * (xx + 3 * np.abs(yy - centre)) / 7 + float(rng.uniform(0, 6.3)))
    gray = np.where(on_bead, 85 + 40 * across + 10 * ripple, plate)
    rgb = np.stack([gray, gray * 0.97, gray * 0.92], axis=-1)
    tint = np.exp(-(((np.abs(yy - centre) - half - 3) / 3) ** 2))[..., None]  # heat tint
    rgb += tint * np.array([10.0, 0.0, -15.0])
    for _ in range(rng.poisson(3)):  # dust specks, also on good welds
        rgb[_disc((h, w), rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.6, 1.4))] *= 0.6
    if shows and defect == "porosity":
        for _ in range(int(rng.integers(4, 11))):
            py = centre + rng.uniform(-0.6, 0.6) * half
            px, r = rng.uniform(10, w - 50), rng.uniform(1.0, 2.8)
            rgb[_disc((h, w), py, px, r + 0.8)] += 25
            rgb[_disc((h, w), py, px, r)] = 25
    elif shows and defect == "burnthrough":
        py, px, r = centre + rng.normal(0, 1.5), rng.uniform(20, w - 60), rng.uniform(5, 9)
        rgb[_disc((h, w), py, px, r + 2.5)] = (95, 60, 35)
        rgb[_disc((h, w), py, px, r)] = (8, 8, 8)
    elif shows and defect == "spatter":
        for _ in range(int(rng.integers(10, 26))):
            side = rng.choice([-1, 1])
            py = centre + side * (half + rng.uniform(2, 18))
            rgb[_disc((h, w), py, rng.uniform(5, w - 45), rng.uniform(0.8, 1.8))] = 60
    rgb = level * rgb + rng.normal(0, 3, rgb.shape)
    photo = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    _label(photo, code)
    return photo


# --- files -------------------------------------------------------------------------------------


def _write_video(path: Path, frames: np.ndarray) -> None:
    """MPEG-4 part 2 in AVI (FourCC FMP4), single-threaded so the bytes are reproducible."""
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 300_000
        stream.codec_tag = "FMP4"
        stream.codec_context.thread_count = 1
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())


def _write_sensor(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as fh:
        fh.write(SENSOR_HEADER + "\n")
        csv.writer(fh, lineterminator="\n").writerows(rows)


def _write_run(folder: Path, run_id: str, session: Session, run_no: int, defect: str, rng):
    duration = float(rng.uniform(2.0, 3.0))
    ev = _events(defect, duration, rng)
    folder.mkdir(parents=True)
    _write_video(folder / f"{run_id}.avi", _frames(session, defect, duration, ev, rng))
    soundfile.write(
        folder / f"{run_id}.flac",
        _audio(session, defect, duration, ev, rng),
        AUDIO_RATE,
        subtype="PCM_16",
        format="FLAC",
    )
    rows = _sensor_rows(session, run_no, defect, duration, ev, rng)
    _write_sensor(folder / f"{run_id}.csv", rows)
    code = run_id[-2:]
    views = np.zeros(N_PHOTOS, dtype=bool)
    views[rng.choice(N_PHOTOS, size=int(rng.integers(2, 5)), replace=False)] = True
    for k, shows in enumerate(views):
        photo = _photo(session, defect, bool(shows), code, rng)
        target = folder / "images" / f"{run_id}_{k + 1}.jpg"
        target.parent.mkdir(exist_ok=True)
        Image.fromarray(photo).save(target, format="JPEG", quality=90)


def _session(seed: int, split: str, defect: str, index: int, number: int) -> Session:
    rng = _rng(seed, _SPLIT_CODES[split], int(CLASS_CODES_BY_NAME[defect]), index, 0)
    date = dt.date(2023, int(rng.integers(1, 4)), int(rng.integers(1, 29)))
    return Session(
        directory=f"{number}_{defect}_{index + 1}_{date:%m-%d-%y}_Fe410",
        date=date,
        current_a=float(np.round(rng.uniform(150, 180))),
        voltage_v=float(np.round(rng.uniform(19, 23), 1)),
        speed_cpm=float(np.round(rng.uniform(22, 28))),
        thickness_mm=3 if defect == "burnthrough" else 7,  # as in the release
        brightness=float(rng.uniform(0.85, 1.15)),
        tone_hz=float(rng.uniform(180, 260)),
    )


def _readme(params: dict) -> str:
    return "\n".join(
        [
            "# iadbench synthetic weld dataset",
            "",
            "Generated by `iadbench.data.weld_demo.generate_weld_demo` in the layout of the Intel",
            "Robotic Welding Multimodal Dataset (manifest.csv, <DIRECTORY>/<RUN_ID>/ with .avi,",
            ".flac, .csv and images/*.jpg). Synthetic: no real weld is shown. Regenerated (and",
            "replaced as a whole) from the parameters below; do not edit by hand.",
            "",
            f"Every photo shows the class code on a label at [x0, y0, x1, y1] = {list(LABEL_BOX)}.",
            "",
            *(f"- {key}: {value}" for key, value in params.items()),
            "",
        ]
    )


def generate_weld_demo(
    root: str | Path,
    *,
    seed: int = 0,
    n_train: int = 24,
    n_test_good: int = 8,
    n_per_defect: int = 4,
) -> dict:
    """Write the dataset to ``root`` (replacing it atomically); return counts and the label box.

    ``n_train`` good TRAIN runs; VAL and TEST each get ``n_test_good`` good runs and
    ``n_per_defect`` runs of each class in :data:`DEFECTS`. Sessions hold up to
    :data:`RUNS_PER_SESSION` runs.
    """
    if min(n_train, n_test_good, n_per_defect) < 1:
        raise ValueError("n_train, n_test_good and n_per_defect must all be >= 1")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    plan = [("TRAIN", "good", n_train)]
    for split in ("VAL", "TEST"):
        plan += [(split, "good", n_test_good)] + [(split, d, n_per_defect) for d in DEFECTS]
    params = {"seed": seed, "n_train": n_train, "n_test_good": n_test_good}
    params["n_per_defect"] = n_per_defect
    counts: dict[str, dict[str, int]] = {}
    records, run_no, number = [], 0, 0
    with atomic_dir(root) as tmp:
        tmp.chmod(0o755)  # mkdtemp makes it private; the dataset is an ordinary folder
        for split, defect, total in plan:
            counts.setdefault(split.lower(), {})[defect] = total
            code = CLASS_CODES_BY_NAME[defect]
            for index, first in enumerate(range(0, total, RUNS_PER_SESSION)):
                number += 1
                session = _session(seed, split, defect, index, number)
                size = min(RUNS_PER_SESSION, total - first)
                for k in range(first, first + size):
                    run_no += 1
                    rng = _rng(seed, _SPLIT_CODES[split], int(code), k, 1)
                    run_id = f"{session.date:%m-%d-%y}-{run_no:04d}-{code}"
                    folder = tmp / session.directory / run_id
                    _write_run(folder, run_id, session, run_no, defect, rng)
                    records.append(
                        [
                            _CATEGORY_NAMES[defect],
                            "FILLET",
                            str(session.thickness_mm),
                            "FE410",
                            str(size),
                            f"{session.current_a:.0f}",
                            f"{session.voltage_v:.1f}",
                            "4.5",
                            f"{session.speed_cpm:.0f}",
                            session.directory,
                            f"{session.directory}/{run_id}",
                            split,
                        ]
                    )
        with open(tmp / MANIFEST, "w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(MANIFEST_COLUMNS)
            writer.writerows(records)
        (tmp / "README.md").write_text(_readme(params))
    return {"root": str(Path(root)), **params, "splits": counts, "label_box": list(LABEL_BOX)}
