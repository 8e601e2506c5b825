"""MVTec AD layout reader: ``<root>/<category>/{train,test}/<defect>/*`` + ``ground_truth``.

Normal folders are named ``good``; each anomalous ``test/<defect>/<stem>.<ext>`` has its mask at
``ground_truth/<defect>/<stem>_mask.png``. Good test images have no mask (all-zero by convention).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from iadbench.data.images import IMAGE_SUFFIXES
from iadbench.errors import DataError

log = logging.getLogger(__name__)

NORMAL_DIRS = ("good",)


def _images(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    bad = [p for p in files if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES]
    if bad:
        raise DataError(bad[0], f"unsupported file type {bad[0].suffix!r} in an image folder")
    return [p for p in files if p.is_file()]


def read_mvtec(root: str | Path, categories: list[str]) -> Iterator[dict]:
    """Yield manifest rows for the given categories of an MVTec-AD-style root."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "dataset root does not exist or is not a directory")
    for category in categories:
        cat_dir = root / category
        if not cat_dir.is_dir():
            raise DataError(cat_dir, f"category {category!r} not found under the dataset root")
        for split in ("train", "test"):
            split_dir = cat_dir / split
            if not split_dir.is_dir():
                raise DataError(split_dir, f"missing {split}/ folder")
            for defect_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
                defect = defect_dir.name
                normal = defect in NORMAL_DIRS
                if split == "train" and not normal:
                    raise DataError(defect_dir, "train/ may only hold normal ('good') images")
                for image in _images(defect_dir):
                    mask = None
                    if not normal:
                        candidate = cat_dir / "ground_truth" / defect / f"{image.stem}_mask.png"
                        mask = str(candidate) if candidate.exists() else None
                    yield {
                        "sample_id": f"{category}/{split}/{defect}/{image.stem}",
                        "category": category,
                        "split": split,
                        "label": 0 if normal else 1,
                        "defect_type": defect,
                        "image_path": str(image),
                        "mask_path": mask,
                    }
        _warn_orphan_masks(cat_dir)


def _warn_orphan_masks(cat_dir: Path) -> None:
    gt = cat_dir / "ground_truth"
    if not gt.is_dir():
        return
    for mask in sorted(gt.glob("*/*_mask.png")):
        stem = mask.name[: -len("_mask.png")]
        if not any(
            (cat_dir / "test" / mask.parent.name / f"{stem}{s}").exists() for s in IMAGE_SUFFIXES
        ):
            log.warning("%s: mask without a matching test image (ignored)", mask)
