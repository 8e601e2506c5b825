"""VisA layout: the split file ``split_csv/1cls.csv`` names every sample of the benchmark.

The CSV has columns ``object, split, label, image, mask``: ``split`` is ``train``/``test``,
``label`` is ``normal``/``anomaly``, ``image`` and ``mask`` are paths relative to the root
(``<object>/Data/Images/{Normal,Anomaly}/*.JPG``, ``<object>/Data/Masks/Anomaly/*.png``; mask
empty for normal images). VisA masks mark defects with small non-zero values (not 255), which
the default ``mask_threshold`` of 0 handles. Categories are the ``object`` values; defect types
are ``anomaly`` and ``good``. The ``csv`` config key picks another split file of the same form.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from iadbench.data.images import dataset_root, image_file, list_images
from iadbench.errors import DataError

DEFAULT_CSV = "split_csv/1cls.csv"
CSV_COLUMNS = ("object", "split", "label", "image", "mask")
LABELS = {"normal": 0, "anomaly": 1}
DEFECT_TYPES = {0: "good", 1: "anomaly"}


def _csv_path(cfg: dict) -> Path:
    return dataset_root(cfg) / cfg.get("csv", DEFAULT_CSV)


def _records(cfg: dict) -> list[dict]:
    """The split file's rows, checked, each with its line number under ``line``."""
    path = _csv_path(cfg)
    if not path.is_file():
        raise DataError(path, f"VisA split file not found (expected {DEFAULT_CSV} in the root)")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(path, f"missing column(s) {', '.join(missing)} in the header")
            records = []
            for row in reader:
                record = {k: (row[k] or "").strip() for k in CSV_COLUMNS}
                where = f"row at line {reader.line_num}"
                if record["split"] not in ("train", "test"):
                    raise DataError(path, f"{where}: unknown split {record['split']!r}")
                if record["label"] not in LABELS:
                    raise DataError(path, f"{where}: unknown label {record['label']!r}")
                if not record["object"] or not record["image"]:
                    raise DataError(path, f"{where}: empty object or image")
                records.append({**record, "line": reader.line_num})
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text ({exc})") from exc
    return records


def discover(cfg: dict) -> list[str]:
    """The distinct ``object`` values of the split file, sorted."""
    return sorted({r["object"] for r in _records(cfg)})


def _selected(cfg: dict, categories: list[str]) -> list[dict]:
    records = _records(cfg)
    known = {r["object"] for r in records}
    for category in categories:
        if category not in known:
            raise DataError(
                dataset_root(cfg), f"category {category!r} not found in {_csv_path(cfg)}"
            )
    wanted = set(categories)
    return [r for r in records if r["object"] in wanted]


def read(cfg: dict, categories: list[str]) -> Iterator[dict]:
    """Yield manifest rows for the given objects."""
    root = dataset_root(cfg)
    for record in _selected(cfg, categories):
        label = LABELS[record["label"]]
        image = image_file(root / record["image"])
        mask = str(image_file(root / record["mask"])) if record["mask"] else None
        defect = DEFECT_TYPES[label]
        yield {
            "sample_id": f"{record['object']}/{record['split']}/{defect}/{image.stem}",
            "category": record["object"],
            "split": record["split"],
            "label": label,
            "defect_type": defect,
            "image_path": str(image),
            "mask_path": mask,
        }


def mask_files(cfg: dict, categories: list[str]) -> list[str]:
    """Every image file in the folders the split file takes masks from."""
    root = dataset_root(cfg)
    folders = {(root / r["mask"]).parent for r in _selected(cfg, categories) if r["mask"]}
    return [str(p) for folder in sorted(folders) if folder.is_dir() for p in list_images(folder)]
