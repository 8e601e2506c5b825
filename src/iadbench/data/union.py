"""Unions of datasets (``layout: union``): one manifest made of other datasets' manifests.

A mixed test set of several product lines, or a dataset plus a 100 %-anomalous source, is then an
ordinary dataset to every later rule. The union reads its sources' checked manifests, never their
images (each source's manifest already decoded them), and:

- keeps every row's ``image_path``, ``mask_path``, ``label``, ``defect_type``, ``split`` and
  ``note``; ``source`` names the source dataset, ``source_split`` is the source row's
  ``source_split``, and ``sample_id`` becomes ``<source>/<original sample_id>`` so ids from
  different sources cannot clash;
- renames a category found in more than one source to ``<source>__<category>`` in *every*
  source that has it (two lines' ``bottle`` become ``line_a__bottle`` and ``line_b__bottle``),
  so colliding names never merge silently; a category of one source only keeps its name;
- keeps only the (final) category names listed in ``categories`` (default ``"all"``);
- applies its own ``val_split`` after the merge, to the rows whose split is still ``test``: rows
  a source already moved to ``val`` or ``train_labelled`` keep their split;
- checks what the merge can break: every category keeps test images and no anomalous image is in
  ``train``. Training images are *not* required (a 100 %-anomalous source has none): a method
  fitted per category needs them and stops at its fit step on such a category.

Geometry (``resize``/``crop``) comes from the union's own config entry, like any dataset's.
"""

from __future__ import annotations

import logging
from collections import Counter

import pandas as pd

from iadbench.data.manifest import (
    MISSING_MASK,
    _check_categories,
    _check_duplicates,
    _check_names,
    _log_moves,
    to_frame,
    val_split,
)
from iadbench.errors import CacheError, ConfigError, DataError

log = logging.getLogger(__name__)

SEPARATOR = "__"
KEPT = ["image_path", "mask_path", "label", "defect_type", "split", "note"]


def _source_names(cfg: dict, sources: dict[str, pd.DataFrame]) -> list[str]:
    names = cfg.get("sources")
    if isinstance(names, str) or not names:
        raise ConfigError(f"sources must be a non-empty list of dataset names, got {names!r}")
    names = list(names)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"sources lists {repeated[0]!r} more than once")
    for source in names:
        if source not in sources:
            raise ConfigError(
                f"unknown source dataset {source!r} (given: {', '.join(sorted(sources)) or 'none'})"
            )
    return names


def category_names(categories: dict[str, list[str]]) -> dict[tuple[str, str], str]:
    """``(source, category) -> union category``: colliding names get the source as prefix.

    A prefixed name that equals a category kept unchanged would merge two categories after all,
    so it is a :class:`~iadbench.errors.ConfigError`.
    """
    counts = Counter(c for cats in categories.values() for c in set(cats))
    names = {
        (source, c): f"{source}{SEPARATOR}{c}" if counts[c] > 1 else c
        for source, cats in categories.items()
        for c in cats
    }
    owners: dict[str, tuple[str, str]] = {}
    for key, name in names.items():
        if name in owners and owners[name] != key:
            (s1, c1), (s2, c2) = owners[name], key
            raise ConfigError(
                f"category {c1!r} of {s1!r} and {c2!r} of {s2!r} would both be named {name!r}"
            )
        owners[name] = key
    return names


def _check_columns(source: str, frame: pd.DataFrame) -> None:
    lacking = [c for c in ["sample_id", "category", *KEPT] if c not in frame]
    if lacking:
        raise CacheError(f"manifest of source {source!r} lacks the columns {lacking}")


def _rows(source: str, frame: pd.DataFrame, names: dict[tuple[str, str], str]) -> pd.DataFrame:
    rows = frame[KEPT].copy()
    rows["sample_id"] = source + "/" + frame["sample_id"].astype(str)
    rows["category"] = [names[(source, str(c))] for c in frame["category"]]
    rows["source"] = source
    if "source_split" in frame:
        rows["source_split"] = frame["source_split"].where(
            frame["source_split"].notna(), frame["split"]
        )
    else:
        rows["source_split"] = frame["split"]
    return rows


def _select(cfg: dict, frame: pd.DataFrame) -> list[str]:
    known = sorted(frame["category"].unique())
    spec = cfg.get("categories", "all")
    if spec == "all":
        return known
    if isinstance(spec, str) or not spec:
        raise ConfigError(f"categories must be a non-empty list or 'all', got {spec!r}")
    unknown = [c for c in spec if c not in known]
    if unknown:
        raise ConfigError(
            f"category {unknown[0]!r} is in none of the sources (union categories: "
            f"{', '.join(known)})"
        )
    return list(spec)


def union_manifest(name: str, cfg: dict, sources: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The manifest of the union dataset ``name`` from its sources' manifests.

    ``cfg`` is the union's ``datasets:`` entry; ``sources`` maps each name of ``cfg["sources"]``
    to that dataset's manifest. ``frame.attrs["sources"]`` lists the sources in config order;
    ``frame.attrs["orphan_masks"]`` is empty (each source reports its own).
    """
    try:
        names = _source_names(cfg, sources)
        for source in names:
            _check_columns(source, sources[source])
        renamed = category_names(
            {s: sorted(sources[s]["category"].astype(str).unique()) for s in names}
        )
        parts = [_rows(s, sources[s], renamed) for s in names if len(sources[s])]
        if not parts:
            raise DataError(f"dataset {name!r}", f"no samples in sources {', '.join(names)}")
        merged = pd.concat(parts, ignore_index=True)
        categories = _select(cfg, merged)
        frame = to_frame(merged[merged["category"].isin(categories)].to_dict("records"))
        _check_names(frame)
        _check_duplicates(frame)
        _check_categories(frame, categories, f"dataset {name!r}", require_train=False)
        if cfg.get("val_split") is not None:
            frame = val_split(
                frame, cfg["val_split"], categories, f"dataset {name!r}", require_train=False
            )
            _log_moves(name, frame)
    except ConfigError as exc:
        raise ConfigError(f"dataset {name!r}: {exc}") from None
    frame.attrs["sources"] = names
    frame.attrs["orphan_masks"] = []
    log.info(
        "dataset %s: union of %s, %d samples in %d categories, %d kept without mask",
        name,
        ", ".join(names),
        len(frame),
        len(categories),
        int((frame["note"] == MISSING_MASK).sum()),
    )
    return frame
