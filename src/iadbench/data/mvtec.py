"""MVTec-AD-style tree layout: ``<root>/<category>/{train,test}/<defect>/`` + ``ground_truth/``.

MVTec AD and MPDD use it as is: normal folders are named ``good`` and the anomalous image
``test/<defect>/<stem>.<ext>`` has its mask at ``ground_truth/<defect>/<stem>_mask.png``.
The mask name is ``<stem><mask_suffix>`` with any image extension (``mask_suffix`` defaults to
``_mask``; ``""`` for trees whose masks carry the image's own name), so the same reader serves
BTAD (see :mod:`iadbench.data.btad`). A test image whose ground-truth folder holds a mask also
gets it when it is normal, so the mask is checked to be empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from iadbench.data.images import dataset_root, list_images, require_utf8
from iadbench.errors import ConfigError, DataError

SPLITS = ("train", "test")


def _subdirs(folder: Path) -> list[Path]:
    """Sorted subfolders; a loose file where only folders belong is an error, not skipped."""
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if not path.is_dir():
            raise DataError(require_utf8(path), f"unexpected file in {folder} (expected folders)")
        found.append(require_utf8(path))
    return found


def _masks_by_stem(folder: Path) -> dict[str, list[Path]]:
    index: dict[str, list[Path]] = {}
    if folder.is_dir():
        for path in list_images(folder):
            index.setdefault(path.stem, []).append(path)
    return index


@dataclass(frozen=True)
class TreeLayout:
    """A reader for one dialect of the tree: the name of its normal folder and mask suffix."""

    normal_dir: str
    default_mask_suffix: str

    def _mask_suffix(self, cfg: dict) -> str:
        suffix = cfg.get("mask_suffix", self.default_mask_suffix)
        if not isinstance(suffix, str):
            raise ConfigError(f"mask_suffix must be a string, got {suffix!r}")
        return suffix

    def discover(self, cfg: dict) -> list[str]:
        """Folders of the root that hold a ``train/`` or ``test/`` folder, sorted."""
        root = dataset_root(cfg)
        return sorted(
            require_utf8(p).name
            for p in root.iterdir()
            if p.is_dir() and any((p / split).is_dir() for split in SPLITS)
        )

    def read(self, cfg: dict, categories: list[str]) -> Iterator[dict]:
        """Yield manifest rows for the given categories."""
        root = dataset_root(cfg)
        suffix = self._mask_suffix(cfg)
        for category in categories:
            cat_dir = root / category
            if not cat_dir.is_dir():
                raise DataError(root, f"category {category!r} not found under the dataset root")
            for split in SPLITS:
                split_dir = cat_dir / split
                if not split_dir.is_dir():
                    raise DataError(split_dir, f"missing {split}/ folder")
                for defect_dir in _subdirs(split_dir):
                    yield from self._rows(cat_dir, category, split, defect_dir, suffix)

    def _rows(
        self, cat_dir: Path, category: str, split: str, defect_dir: Path, suffix: str
    ) -> Iterator[dict]:
        normal = defect_dir.name == self.normal_dir
        if split == "train" and not normal:
            raise DataError(defect_dir, f"train/ may only hold normal ({self.normal_dir!r}) images")
        defect = "good" if normal else defect_dir.name
        masks = (
            _masks_by_stem(cat_dir / "ground_truth" / defect_dir.name) if split == "test" else {}
        )
        for image in list_images(defect_dir):
            found = masks.get(image.stem + suffix, [])
            if len(found) > 1:
                raise DataError(image, f"several masks match: {', '.join(map(str, found))}")
            yield {
                "sample_id": f"{category}/{split}/{defect}/{image.stem}",
                "category": category,
                "split": split,
                "label": 0 if normal else 1,
                "defect_type": defect,
                "image_path": str(image),
                "mask_path": str(found[0]) if found else None,
            }

    def mask_files(self, cfg: dict, categories: list[str]) -> list[str]:
        """Every file under ``<category>/ground_truth/<defect>/`` (to find masks without image)."""
        root = dataset_root(cfg)
        found = []
        for category in categories:
            gt = root / category / "ground_truth"
            if gt.is_dir():
                found += [str(p) for d in _subdirs(gt) for p in list_images(d)]
        return found


MVTEC = TreeLayout(normal_dir="good", default_mask_suffix="_mask")
