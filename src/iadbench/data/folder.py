"""Generic folder layout: each category says with globs where its normal and abnormal images are.

Config (globs are relative to ``root`` and support ``**``)::

    layout: folder
    root: <path>
    categories:
      <category>: {normal: [<glob>, ...], abnormal: [<glob>, ...]}
    mask: "{dir}/{stem}.png"          # optional: where an image's mask is
    mask_threshold: 0                 # mask pixels > threshold are defect
    split: {train_fraction: 0.8, seed: 0}

The ``mask`` template knows ``{root}``, ``{category}``, ``{dir}`` (the image's folder, root
included, as found), ``{parent}`` (that folder's name), ``{stem}``, ``{name}`` and ``{suffix}``
of the image; its result is a path like ``{dir}``, reachable from the working directory.

The template applies to every image: an abnormal image needs its mask (see
``allow_missing_masks``), a normal one may have one (checked to be empty). Masks may live among
the images, so a glob can match them. Every file the template could name in the folder of a
matched image (the template with ``*`` for the image's stem, name and suffix) is a mask, never an
image, whether a normal or an abnormal glob matched it; one that no image names is reported as a
mask without image. The one exception: a normal image that names itself (``{dir}/{stem}.png``
over PNG images) stays an image, without mask. So ``{dir}/{stem}.png`` suits JPEG images with
PNG masks beside them, and ``{dir}/{stem}_mask.png`` any images.

Normal images are shuffled with ``seed`` and the first ``train_fraction`` of them (rounded)
train; the rest and every abnormal image test. Sample ids are
``<category>/<split>/<path relative to root without suffix>`` and an abnormal image's defect
type is the name of its folder.
"""

from __future__ import annotations

import glob
import os
import string
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from iadbench.data.images import dataset_root, image_file
from iadbench.errors import ConfigError, DataError

PLACEHOLDERS = ("root", "category", "dir", "parent", "stem", "name", "suffix")
_PER_IMAGE = ("stem", "name", "suffix")  # the placeholders a mask glob leaves open


def _mapping(cfg: dict) -> dict:
    mapping = cfg.get("categories")
    if not isinstance(mapping, dict):
        raise ConfigError(
            "the folder layout needs 'categories' as a mapping of category -> "
            f"{{normal: [globs], abnormal: [globs]}} (it cannot discover them), got {mapping!r}"
        )
    return mapping


def discover(cfg: dict) -> list[str]:
    """The categories of the mapping: a folder tree says nothing about which folder is which."""
    return sorted(_mapping(cfg))


def _globs(cfg: dict, category: str) -> tuple[list[str], list[str]]:
    entry = _mapping(cfg).get(category)
    if entry is None:
        raise DataError(dataset_root(cfg), f"category {category!r} is not in the categories")
    if not isinstance(entry, dict) or set(entry) != {"normal", "abnormal"}:
        raise ConfigError(f"category {category!r} needs exactly the keys normal and abnormal")
    for key, patterns in entry.items():
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise ConfigError(f"category {category!r}: {key} must be a list of globs")
        absolute = [p for p in patterns if Path(p).is_absolute()]
        if absolute:
            raise ConfigError(f"category {category!r}: glob {absolute[0]!r} must be relative")
    return entry["normal"], entry["abnormal"]


def _template(cfg: dict) -> str | None:
    template = cfg.get("mask")
    if template is None:
        return None
    if not isinstance(template, str):
        raise ConfigError(f"mask must be a template string, got {template!r}")
    unknown = sorted(
        {f for _, f, _, _ in string.Formatter().parse(template) if f is not None} - {*PLACEHOLDERS}
    )
    if unknown:
        raise ConfigError(
            f"mask template {template!r}: unknown placeholder(s) {unknown} "
            f"(available: {', '.join(PLACEHOLDERS)})"
        )
    return template


def _split(cfg: dict) -> tuple[float, int]:
    split = cfg.get("split", {})
    if not isinstance(split, dict):
        raise ConfigError(f"split must be a mapping {{train_fraction, seed}}, got {split!r}")
    fraction, seed = split.get("train_fraction", 0.8), split.get("seed", 0)
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, int | float)
        or not 0 <= fraction <= 1
    ):
        raise ConfigError(f"split.train_fraction must be a number in [0, 1], got {fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"split.seed must be an integer >= 0, got {seed!r}")
    return float(fraction), seed


def _matches(root: Path, patterns: list[str]) -> set[Path]:
    found = set()
    for pattern in patterns:
        for hit in glob.glob(os.path.join(glob.escape(str(root)), pattern), recursive=True):
            if not os.path.isdir(hit):
                found.add(image_file(hit))
    return found


def _folder_fields(root: Path, category: str, folder: Path) -> dict[str, str]:
    return {"root": str(root), "category": category, "dir": str(folder), "parent": folder.name}


def _named(template: str, root: Path, category: str, image: Path) -> Path:
    fields = _folder_fields(root, category, image.parent)
    return Path(template.format(**fields, stem=image.stem, name=image.name, suffix=image.suffix))


def _mask_of(template: str | None, root: Path, category: str, image: Path) -> Path | None:
    """The file the template names for ``image``, if it exists (a broken link fails later)."""
    if template is None:
        return None
    mask = _named(template, root, category, image)
    return mask if mask != image and os.path.lexists(mask) else None


def _masks_near(template: str, root: Path, category: str, folder: Path) -> set[Path]:
    """Every file the template could name for some image in ``folder``."""
    fields = _folder_fields(root, category, folder)
    pattern = ""
    for literal, field, _, _ in string.Formatter().parse(template):
        pattern += glob.escape(literal)
        if field is not None:
            pattern += "*" if field in _PER_IMAGE else glob.escape(fields[field])
    return {image_file(hit) for hit in glob.glob(pattern) if not os.path.isdir(hit)}


class _Category(NamedTuple):
    normal: list[Path]
    abnormal: list[Path]
    masks: set[Path]  # every file taken to be a mask, used or not


def _check_unique_stems(images: set[Path]) -> None:
    """``a.png`` beside ``a.jpg`` would share a sample id (whatever split each lands in)."""
    seen: dict[Path, Path] = {}
    for image in sorted(images):
        other = seen.setdefault(image.with_suffix(""), image)
        if other != image:
            raise DataError(
                image, f"duplicate sample id: same name as {other} with another extension"
            )


def _files(cfg: dict, category: str) -> _Category:
    """Sort what a category's globs match into normal images, abnormal images and masks."""
    root, template = dataset_root(cfg), _template(cfg)
    normal_globs, abnormal_globs = _globs(cfg, category)
    normal, abnormal = _matches(root, normal_globs), _matches(root, abnormal_globs)
    masks: set[Path] = set()
    if template is not None:
        named = {_mask_of(template, root, category, p) for p in normal | abnormal} - {None}
        for folder in sorted({p.parent for p in normal | abnormal}):
            for path in _masks_near(template, root, category, folder):
                # A normal image may name itself ({dir}/{stem}.png over PNG images): no mask.
                self_named = path in normal and _named(template, root, category, path) == path
                if path in named or not self_named:
                    masks.add(path)
    normal, abnormal = normal - masks, abnormal - masks
    both = sorted(normal & abnormal)
    if both:
        raise DataError(both[0], f"matched by both a normal and an abnormal glob of {category!r}")
    _check_unique_stems(normal | abnormal)
    if not normal and not abnormal:
        hint = f" ({len(masks)} matched files are masks under the mask template)" if masks else ""
        raise DataError(root, f"category {category!r}: no image matches its globs{hint}")
    return _Category(sorted(normal), sorted(abnormal), masks)


def read(cfg: dict, categories: list[str]) -> Iterator[dict]:
    """Yield manifest rows for the given categories."""
    root, template = dataset_root(cfg), _template(cfg)
    fraction, seed = _split(cfg)
    for category in categories:
        files = _files(cfg, category)
        order = np.random.default_rng(seed).permutation(len(files.normal))
        train = {files.normal[i] for i in order[: round(fraction * len(files.normal))]}
        for label, images in ((0, files.normal), (1, files.abnormal)):
            for image in images:
                split = "train" if image in train else "test"
                mask = _mask_of(template, root, category, image)
                yield _row(root, category, split, image, label, mask)


def _row(root: Path, category: str, split: str, image: Path, label: int, mask: Path | None) -> dict:
    relative = Path(os.path.relpath(image, root)).with_suffix("").as_posix()
    return {
        "sample_id": f"{category}/{split}/{relative}",
        "category": category,
        "split": split,
        "label": label,
        "defect_type": image.parent.name if label else "good",
        "image_path": str(image),
        "mask_path": None if mask is None else str(mask),
    }


def mask_files(cfg: dict, categories: list[str]) -> list[str]:
    """Every file taken to be a mask for the categories, used or not."""
    return sorted(str(p) for c in categories for p in _files(cfg, c).masks)
