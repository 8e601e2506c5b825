"""Weld layout: the Intel Robotic Welding Multimodal Dataset as released (METHODS §13).

``<root>/manifest.csv`` lists every run (header ``CATEGORY, WELD_TYPE, THICKNESS_MM, STEEL_TYPE,
SAMPLES, CURRENT_A, VOLTAGE_V, GAS_BAR, ROBOT_SPEED_CPM, DIRECTORY, SUBDIRS, SPLIT``); the run's
folder ``<root>/<SUBDIRS>/`` holds ``<RUN_ID>.avi`` (video), ``<RUN_ID>.flac`` (audio),
``<RUN_ID>.csv`` (welding sensors) and ``images/*.jpg`` (post-weld photos). ``RUN_ID`` is the last
component of ``SUBDIRS``, ``MM-DD-YY-NNNN-CC`` with ``CC`` the class code.

The whole dataset is one category, ``weld``, with the release's own TRAIN/VAL/TEST split (so
``val_split`` is refused). ``CATEGORY`` becomes ``defect_type`` and must agree with the class code:
a disagreement or an unknown name stops the build rather than becoming ``good``.

Runs without photos exist in the release (three); ``missing_modality: drop_run`` (the default)
drops them with a warning and lists them in ``frame.attrs["dropped_runs"]``, ``error`` stops. A
missing video, audio or sensor file always stops: every released run has all three, so one
missing means a broken copy. The photos carry a paper label printing the class code (a label
leak): ``label_mask: {box: [x0, y0, x1, y1]}`` blanks it wherever photos are read; without it a
warning says so and ``frame.attrs["label_mask"]`` is null.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd
from PIL import Image, UnidentifiedImageError

from iadbench.data.images import IMAGE_SUFFIXES, dataset_root, require_utf8
from iadbench.data.media import check_sensor_header, probe_audio, probe_video
from iadbench.errors import ConfigError, DataError
from iadbench.progress import Progress

log = logging.getLogger(__name__)

CATEGORY = "weld"
MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = (
    "CATEGORY",
    "WELD_TYPE",
    "THICKNESS_MM",
    "STEEL_TYPE",
    "SAMPLES",
    "CURRENT_A",
    "VOLTAGE_V",
    "GAS_BAR",
    "ROBOT_SPEED_CPM",
    "DIRECTORY",
    "SUBDIRS",
    "SPLIT",
)
CLASS_CODES = {
    "00": "good",
    "01": "excessive_penetration",
    "02": "burnthrough",
    "03": "porosity",
    "04": "porosity_w_excessive_penetration",
    "05": "undercut",
    "06": "overlap",
    "07": "lack_of_fusion",
    "08": "excessive_convexity",
    "09": "spatter",
    "10": "warping",
    "11": "crater_cracks",
}
# other spellings seen in the release's derivatives (H4R/therness, classifier repos)
_ALIASES = {"good_weld": "good", "burn_through": "burnthrough", "burnthrough_weld": "burnthrough"}
SPLITS = {"TRAIN": "train", "VAL": "val", "TEST": "test"}
RUN_ID = re.compile(r"^\d{2}-\d{2}-\d{2}-\d{4}-(\d{2})$")
MISSING_MODALITY = ("drop_run", "error")
# manifest columns this layout adds (see iadbench.data.manifest)
EXTRA_COLUMNS = (
    "run_id",
    "video_path",
    "audio_path",
    "sensor_path",
    "photo_paths",
    "weld_type",
    "thickness_mm",
    "steel_type",
    "current_a",
    "voltage_v",
    "gas_bar",
    "robot_speed_cpm",
)
_METADATA = {
    "weld_type": ("WELD_TYPE", str),
    "thickness_mm": ("THICKNESS_MM", float),
    "steel_type": ("STEEL_TYPE", str),
    "current_a": ("CURRENT_A", float),
    "voltage_v": ("VOLTAGE_V", float),
    "gas_bar": ("GAS_BAR", float),
    "robot_speed_cpm": ("ROBOT_SPEED_CPM", float),
}
# the layout has no pixel masks: anomalous rows are image-level only by construction
HAS_MASKS = False


def defect_name(category: str) -> str:
    """``CATEGORY`` as a defect type: lowercase snake case, ``Good`` -> ``good``.

    ``"Porosity w/ Excessive Penetration"`` and ``"Porosity_w_Excessive_Penetration"`` both give
    ``porosity_w_excessive_penetration``.
    """
    name = re.sub(r"[^a-z0-9]+", "_", category.strip().lower()).strip("_")
    return _ALIASES.get(name, name)


def missing_modality(cfg: dict) -> str:
    """The ``missing_modality`` policy (default ``drop_run``)."""
    value = cfg.get("missing_modality") or "drop_run"
    if value not in MISSING_MODALITY:
        raise ConfigError(f"missing_modality must be one of {MISSING_MODALITY}, got {value!r}")
    return value


def label_box(cfg: dict) -> list[int] | None:
    """The ``label_mask`` box ``[x0, y0, x1, y1]`` (original photo pixels), or None."""
    spec = cfg.get("label_mask")
    if spec is None:
        return None
    box = spec.get("box") if isinstance(spec, dict) and set(spec) == {"box"} else None
    if (
        not isinstance(box, list)
        or len(box) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in box)
        or box[2] <= box[0]
        or box[3] <= box[1]
    ):
        raise ConfigError(
            f"label_mask must be null or {{box: [x0, y0, x1, y1]}} with 0 <= x0 < x1 and "
            f"0 <= y0 < y1 (integers), got {spec!r}"
        )
    return list(box)


@dataclass(frozen=True)
class Run:
    """One manifest.csv row, checked, with the files found for it."""

    row: dict
    where: str  # "<manifest.csv>: line N", for errors about the row
    split: str
    defect_type: str
    run_id: str
    folder: Path
    photos: tuple[Path, ...]

    def media(self, suffix: str) -> Path:
        return self.folder / f"{self.run_id}{suffix}"


def _records(root: Path) -> list[dict]:
    """manifest.csv as text records (header names stripped), each with its line number."""
    path = root / MANIFEST
    if not path.is_file():
        raise DataError(path, "weld manifest not found (expected manifest.csv in the root)")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot parse the weld manifest ({exc})") from exc
    table.columns = [str(name).strip() for name in table.columns]
    missing = [name for name in MANIFEST_COLUMNS if name not in table.columns]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)} in the header")
    records = table.to_dict("records")
    for line, record in enumerate(records, start=2):
        record["line"] = line
    return records


def _photos(folder: Path) -> tuple[Path, ...]:
    images = folder / "images"
    if not images.is_dir():
        return ()
    return tuple(
        require_utf8(p)
        for p in sorted(images.iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def _run(root: Path, record: dict) -> Run:
    where = f"{root / MANIFEST}: line {record['line']}"
    split = SPLITS.get(record["SPLIT"].strip().upper())
    if split is None:
        raise DataError(where, f"unknown SPLIT {record['SPLIT']!r} (expected TRAIN, VAL or TEST)")
    subdirs = PurePosixPath(record["SUBDIRS"].strip().replace("\\", "/"))
    match = RUN_ID.match(subdirs.name)
    if not match or subdirs.is_absolute() or ".." in subdirs.parts:
        raise DataError(where, f"SUBDIRS {record['SUBDIRS']!r} does not end in MM-DD-YY-NNNN-CC")
    defect = defect_name(record["CATEGORY"])
    if defect not in CLASS_CODES.values():
        raise DataError(where, f"unknown CATEGORY {record['CATEGORY']!r}")
    code = match.group(1)
    if CLASS_CODES.get(code) != defect:
        raise DataError(
            where,
            f"CATEGORY {record['CATEGORY']!r} disagrees with the class code {code} of run "
            f"{subdirs.name} ({CLASS_CODES.get(code, 'unknown code')})",
        )
    if split == "train" and defect != "good":
        raise DataError(where, f"run {subdirs.name}: TRAIN may only hold Good runs")
    folder = require_utf8(root.joinpath(*subdirs.parts))
    if not folder.is_dir():
        raise DataError(folder, "run folder does not exist")
    return Run(record, where, split, defect, subdirs.name, folder, _photos(folder))


def runs(cfg: dict) -> tuple[list[Run], list[dict]]:
    """The kept runs and the dropped ones (``{run_id, split, defect_type, missing}``).

    Checks names, codes and file presence only; :func:`read` probes the media.
    """
    root = dataset_root(cfg)
    policy = missing_modality(cfg)
    kept, dropped = [], []
    for record in _records(root):
        run = _run(root, record)
        for suffix in (".avi", ".flac", ".csv"):
            if not run.media(suffix).is_file():
                raise DataError(run.media(suffix), "file does not exist")
        if not run.photos:
            if policy == "error":
                raise DataError(
                    run.folder / "images",
                    "run has no post-weld photos (missing_modality: drop_run drops such runs)",
                )
            dropped.append(
                {
                    "run_id": run.run_id,
                    "split": run.split,
                    "defect_type": run.defect_type,
                    "missing": "photos",
                }
            )
            continue
        kept.append(run)
    return kept, dropped


def _check_photo(path: Path) -> None:
    """Header only: the photos are many and large; the first one is decoded by the manifest."""
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty (0 bytes)")
    try:
        with Image.open(path) as img:
            img.size  # noqa: B018 - opening parses the header
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(path, f"cannot read image header ({exc})") from exc


def _check_media(run: Run) -> None:
    probe_video(run.media(".avi"))
    probe_audio(run.media(".flac"))
    check_sensor_header(run.media(".csv"))
    for photo in run.photos:
        _check_photo(photo)


def _number(run: Run, column: str) -> float:
    try:
        return float(run.row[column])
    except ValueError:
        raise DataError(run.where, f"{column} {run.row[column]!r} is not a number") from None


def _row(run: Run) -> dict:
    metadata = {
        key: (_number(run, column) if kind is float else run.row[column].strip())
        for key, (column, kind) in _METADATA.items()
    }
    return {
        "sample_id": f"{CATEGORY}/{run.split}/{run.defect_type}/{run.run_id}",
        "category": CATEGORY,
        "split": run.split,
        "label": 0 if run.defect_type == "good" else 1,
        "defect_type": run.defect_type,
        "image_path": str(run.photos[0]),
        "mask_path": None,
        "note": "",
        "run_id": run.run_id,
        "video_path": str(run.media(".avi")),
        "audio_path": str(run.media(".flac")),
        "sensor_path": str(run.media(".csv")),
        "photo_paths": [str(p) for p in run.photos],
        **metadata,
    }


def _check_config(cfg: dict, categories: list[str]) -> None:
    missing_modality(cfg)
    label_box(cfg)
    if list(categories) != [CATEGORY]:
        raise ConfigError(f"layout weld has one category, {CATEGORY!r}; got {categories}")
    if cfg.get("val_split") is not None:
        raise ConfigError("val_split is refused for layout weld: the release has its own VAL")


def discover(cfg: dict) -> list[str]:
    """Always ``["weld"]`` once the manifest is there."""
    _records(dataset_root(cfg))
    return [CATEGORY]


def read(cfg: dict, categories: list[str]) -> Iterator[dict]:
    """Yield one manifest row per kept run, after a cheap probe of each of its files."""
    _check_config(cfg, categories)
    kept, _ = runs(cfg)
    for run in Progress(kept, desc="probing runs", unit="run", disable=None):
        _check_media(run)
        yield _row(run)


def mask_files(cfg: dict, categories: list[str]) -> list[str]:
    """No pixel masks in this layout."""
    return []


def attrs(cfg: dict, categories: list[str]) -> dict:
    """Manifest metadata: the dropped runs (each warned about) and the effective label mask."""
    _, dropped = runs(cfg)
    if dropped:
        log.warning(
            "weld: dropped %d run(s) without photos (missing_modality: drop_run): %s",
            len(dropped),
            ", ".join(d["run_id"] for d in dropped),
        )
    box = label_box(cfg)
    if box is None:
        log.warning(
            "weld: label_mask is null: the post-weld photos show a paper label with the class "
            "code (a label leak); results carry label_mask: off"
        )
    return {"dropped_runs": dropped, "label_mask": box}
