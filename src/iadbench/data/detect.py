"""Which layout a dataset folder has, and what it holds: the first half of ``iadbench init``.

:func:`detect` tries each layout's structural signature, cheapest and most specific first:

* ``weld``: ``manifest.csv`` in the root whose header has the Intel release's columns;
* ``visa``: ``split_csv/1cls.csv`` in the root (VisA's own split file);
* ``mvtec`` / ``mpdd`` / ``btad``: folders holding ``train/`` and ``test/``, whose ``train/``
  holds ``good`` (MVTec AD, MPDD; MPDD when every category has an MPDD name) or ``ok`` (BTAD).

Nothing is decoded: :func:`inventory` counts the samples each category has with the layout's
own reader (``discover`` + ``read``, or the weld reader's file-presence check), so a folder the
readers would refuse fails here with the same message. A folder that matches no signature is an
error saying what was looked for and pointing to the ``folder`` layout (globs per category).
Torch-free: the CLI imports it to write a config.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from iadbench.data import visa, weld
from iadbench.data.layouts import get_layout
from iadbench.errors import ConfigError, DataError

DETECTABLE = ("mvtec", "mpdd", "btad", "visa", "weld")
MPDD_CATEGORIES = frozenset(
    {"bracket_black", "bracket_brown", "bracket_white", "connector", "metal_plate", "tubes"}
)
MVTEC_AD_CATEGORIES = frozenset(
    {
        "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
        "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper",
    }
)  # fmt: skip
_TREE_NORMAL = {"good": "mvtec", "ok": "btad"}
DATASET_NAMES = {
    "mvtec": "mvtec_ad", "mpdd": "mpdd", "btad": "btad", "visa": "visa", "weld": "weld"
}  # fmt: skip
_WELD_SIGNATURE = ("CATEGORY", "DIRECTORY", "SUBDIRS", "SPLIT")

FOLDER_HINT = """\
Describe it with the folder layout instead (globs relative to the root, one entry per category):
  datasets:
    mydata:
      layout: folder
      root: {root}
      categories:
        <category>: {{normal: ["<category>/good/*.png"], abnormal: ["<category>/defect*/*.png"]}}
      mask: "{{dir}}/{{stem}}_mask.png"   # optional: where an abnormal image's mask is
      split: {{train_fraction: 0.8, seed: 0}}
(see config/schema.yaml, datasets.*.categories and mask)"""


@dataclass(frozen=True)
class Detection:
    """A recognised layout: its ``layout:`` value, a readable name and what gave it away."""

    layout: str
    label: str
    evidence: str


@dataclass
class CategoryCounts:
    """Samples of one category by role; ``masks`` counts anomalous samples with a mask file."""

    name: str
    train: int = 0
    val_good: int = 0
    val_anomalous: int = 0
    test_good: int = 0
    test_anomalous: int = 0
    masks: int = 0
    dropped: int = 0  # weld runs without photos (missing_modality: drop_run)
    defects: Counter = field(default_factory=Counter)


def _subfolders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _csv_header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [name.strip() for name in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError):
        return []


def _tree_dialect(root: Path) -> tuple[str | None, list[str], set[str]]:
    """(layout, categories, normal folder names) of an MVTec-style tree under ``root``."""
    categories, normals = [], set()
    for folder in _subfolders(root):
        if (folder / "train").is_dir() and (folder / "test").is_dir():
            categories.append(folder.name)
            normals |= {p.name for p in _subfolders(folder / "train")}
    dialects = {_TREE_NORMAL[n] for n in normals if n in _TREE_NORMAL}
    return (dialects.pop() if len(dialects) == 1 else None), categories, normals


def detect(root: str | Path) -> Detection:
    """The layout of the dataset at ``root``; an error says what was looked for when none fits."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "dataset root does not exist or is not a directory")
    manifest = root / weld.MANIFEST
    if manifest.is_file() and set(_WELD_SIGNATURE) <= set(_csv_header(manifest)):
        return Detection("weld", "Intel Robotic Welding", f"{manifest} with weld columns")
    split_file = root / visa.DEFAULT_CSV
    if split_file.is_file():
        return Detection("visa", "VisA", f"{split_file}")
    layout, categories, normals = _tree_dialect(root)
    if categories and layout is not None:
        if layout == "mvtec" and set(categories) <= MPDD_CATEGORIES:
            return Detection("mpdd", "MPDD", f"{len(categories)} MPDD categories with train/good")
        label = "MVTec AD" if set(categories) <= MVTEC_AD_CATEGORIES else "MVTec AD-style tree"
        if layout == "btad":
            label = "BTAD"
        normal = "good" if layout == "mvtec" else "ok"
        return Detection(
            layout, label, f"{len(categories)} folder(s) with train/{normal}/ and test/"
        )
    problems = []
    if categories:
        found = ", ".join(sorted(normals)) or "nothing"
        problems.append(
            f"{len(categories)} folder(s) have train/ and test/, but train/ holds {found} "
            "(MVTec AD/MPDD name the normal folder 'good', BTAD 'ok')"
        )
    elif (root / "train").is_dir() and (root / "test").is_dir():
        problems.append(
            f"{root} itself holds train/ and test/: it looks like one category; pass its parent "
            "folder as the root"
        )
    if any((f / "Data" / "Images").is_dir() for f in _subfolders(root)):
        problems.append(
            f"VisA's image folders are there but not its split file {visa.DEFAULT_CSV} (copy it "
            "from the VisA repository into the root)"
        )
    if manifest.is_file():
        problems.append(f"{manifest} lacks the weld columns {', '.join(_WELD_SIGNATURE)}")
    looked = (
        "looked for manifest.csv with the weld columns (weld), split_csv/1cls.csv (VisA) and "
        "<category>/train/{good|ok}/ + <category>/test/ (MVTec AD, MPDD, BTAD)"
    )
    reason = "; ".join(problems) if problems else looked
    raise DataError(
        root,
        f"could not recognise the layout: {reason}.\n{FOLDER_HINT.format(root=root)}",
    )


def _dataset_cfg(layout: str, root: Path) -> dict:
    return {"layout": layout, "root": str(root), "categories": "all"}


def inventory(layout: str, root: str | Path) -> list[CategoryCounts]:
    """Per category: train images (or runs), good and anomalous test images, masks found."""
    if layout not in DETECTABLE:
        raise ConfigError(
            f"iadbench init reads layouts {', '.join(DETECTABLE)}; layout {layout!r} needs its "
            "categories written by hand"
        )
    cfg = _dataset_cfg(layout, Path(root))
    if layout == "weld":
        return [_weld_counts(cfg)]
    reader = get_layout(layout)
    categories = reader.discover(cfg)
    if not categories:
        raise DataError(root, f"no categories found for layout {layout}")
    counts = {c: CategoryCounts(c) for c in categories}
    for row in reader.read(cfg, categories):
        entry = counts[row["category"]]
        _count(entry, row["split"], row["label"], row["defect_type"])
        entry.masks += row["label"] == 1 and row["mask_path"] is not None
    return list(counts.values())


def _count(entry: CategoryCounts, split: str, label: int, defect: str) -> None:
    if split == "train":
        entry.train += 1
        return
    name = f"{split}_{'anomalous' if label else 'good'}"
    setattr(entry, name, getattr(entry, name) + 1)
    if label:
        entry.defects[defect] += 1


def _weld_counts(cfg: dict) -> CategoryCounts:
    kept, dropped = weld.runs(cfg)
    entry = CategoryCounts(weld.CATEGORY)
    for run in kept:
        _count(entry, run.split, int(run.defect_type != "good"), run.defect_type)
    entry.dropped = len(dropped)
    return entry


def format_inventory(detection: Detection, root: Path, counts: list[CategoryCounts]) -> str:
    """The table ``iadbench init`` prints on stderr."""
    has_val = any(c.val_good or c.val_anomalous for c in counts)
    unit = "runs" if detection.layout == "weld" else "images"
    head = ["category", "train", "test good", "test anomalous", "masks"]
    if has_val:
        head[2:2] = ["val good", "val anomalous"]
    rows = []
    for c in counts:
        row = [c.name, c.train, c.test_good, c.test_anomalous, c.masks]
        if has_val:
            row[2:2] = [c.val_good, c.val_anomalous]
        rows.append([str(v) for v in row])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = [
        f"{root}: {detection.label} (layout: {detection.layout}; {detection.evidence})",
        f"{len(counts)} categor{'y' if len(counts) == 1 else 'ies'}, {unit}:",
        ("  " + "  ".join(h.ljust(w) for h, w in zip(head, widths))).rstrip(),
    ]
    lines += [("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths))).rstrip() for r in rows]
    if detection.layout == "weld":
        lines.append("  (no pixel masks in this layout: image-level metrics only)")
        dropped = sum(c.dropped for c in counts)
        if dropped:
            lines.append(f"  {dropped} run(s) without photos are dropped (missing_modality)")
    return "\n".join(lines)
