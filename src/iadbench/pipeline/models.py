"""Model steps: per-category fit, training on a named train set, scoring any split.

What a step reads follows the method kind's declared needs (:mod:`iadbench.methods.kinds`):
cached features, manifest rows (methods that read images themselves), other methods' scores.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from iadbench.data.images import Geometry
from iadbench.data.manifest import SPLITS
from iadbench.errors import CacheError
from iadbench.io import atomic_dir, save_npy, save_parquet
from iadbench.methods.kinds import needs_of
from iadbench.pipeline.features import cached_features

log = logging.getLogger(__name__)
SCORE_COLUMNS = ["sample_id", "category", "split", "label", "defect_type"]


def method_inputs(
    method_cfg: dict,
    files: Mapping[str, str],
    backbone_cfg: dict | None,
    geometry: dict,
    category: str,
    split: str,
    view_options: Mapping | None = None,
):
    """The :class:`~iadbench.methods.base.MethodInputs` of one (category, split).

    ``files`` holds the job's input files by name: ``manifest``, ``npy``/``index`` (features),
    ``visual``/``windows``/``text``/``noisy_text`` (cached CLIP outputs, score jobs only) and
    ``uses_<role>`` (score tables of the methods this one uses), ``features_<name>_npy``/
    ``_index`` (further feature sets a fit reads: ``val``, ``synthetic``; in ``cached``'s
    ``features`` by name). ``view_options``: those of the
    kind's own visual view, which its cached file must have been made with.
    """
    from iadbench.methods.base import MethodInputs

    needs = needs_of(method_cfg)
    scores = {
        key[len("uses_") :]: pd.read_parquet(value)
        for key, value in files.items()
        if key.startswith("uses_")
    }
    manifest = pd.read_parquet(files["manifest"])
    rows = manifest[manifest["category"] == category].reset_index(drop=True)
    if "features" in needs.inputs:
        features = cached_features(files["npy"], files["index"], backbone_cfg, geometry)
        extra = {  # a fit's further feature sets (``features_<name>_npy``): cached["features"]
            key[len("features_") : -len("_npy")]: cached_features(
                value, files[key[: -len("npy")] + "index"], backbone_cfg, geometry
            )
            for key, value in files.items()
            if key.startswith("features_") and key.endswith("_npy")
        }
        cached = {"features": extra} if extra else {}
        return MethodInputs(features.index, features, scores, rows, geometry, backbone_cfg, cached)
    index = rows[rows["split"] == split].reset_index(drop=True)
    if index.empty:
        raise CacheError(f"{files['manifest']}: no {split} images for category {category!r}")
    for role, table in scores.items():
        if sorted(table["sample_id"]) != sorted(index["sample_id"]):
            raise CacheError(
                f"{files['uses_' + role]}: the {role} scores are not of the {len(index)} "
                f"{split} images of {category!r} in {files['manifest']}"
            )
    cached = {}
    if needs.embeddings:
        cached["embeddings"] = embeddings_by_split(files, rows)
    if needs.inputs & {"visual", "windows", "text"} & set(files):
        from iadbench.pipeline.clip import cached_outputs

        cached = cached_outputs(
            files,
            needs.inputs & set(files),
            backbone_cfg,
            geometry,
            list(index["sample_id"]),
            view_options,
            needs.noisy_text,
        )
    return MethodInputs(index, None, scores, rows, geometry, backbone_cfg, cached)


def embeddings_by_split(files: Mapping[str, str], rows: pd.DataFrame) -> dict[str, dict]:
    """The cached embeddings among a job's inputs (``emb_<split>_<role>_npy``/``_index``), as
    ``{split: {role: EmbeddingSet}}``; each must hold exactly that split's samples."""
    from iadbench.features.embeddings import load_embeddings

    stores: dict[str, dict] = {}
    for key, npy in files.items():
        if not (key.startswith("emb_") and key.endswith("_npy")):
            continue
        name = key[len("emb_") : -len("_npy")]
        split = max((s for s in SPLITS if name.startswith(s + "_")), key=len)
        role = name[len(split) + 1 :]
        index_file = files[f"emb_{split}_{role}_index"]
        store = load_embeddings(npy, index_file)
        expected = set(rows.loc[rows["split"] == split, "sample_id"])
        if set(store.index["sample_id"]) != expected:
            raise CacheError(
                f"{index_file}: the {role} embeddings are not of the {len(expected)} {split} "
                "samples of the manifest"
            )
        stores.setdefault(split, {})[role] = store
    return stores


def fit_method(
    method_cfg: dict,
    backbone_cfg: dict | None,
    geometry: dict,
    files: Mapping[str, str],
    category: str,
    state_dir: str | Path,
    device: str = "auto",
) -> dict:
    """Fit one method on one category's normal training split; state goes to ``state_dir``."""
    from iadbench.methods import build_method

    method = build_method(method_cfg, device=device)
    split = needs_of(method_cfg).fit_on
    train = method_inputs(method_cfg, files, backbone_cfg, geometry, category, split)
    if split == "train" and (train.index["label"] != 0).any():
        raise CacheError(f"{files.get('index', files['manifest'])}: training data has anomalies")
    with atomic_dir(state_dir) as tmp:
        return method.fit(train, tmp)


def train_method(
    method_name: str,
    method_cfg: dict,
    backbone_cfg: dict | None,
    train_set_name: str,
    train_set_cfg: dict,
    files: Mapping,
    out_dir: str | Path,
    resume_root: str | Path,
    device: str = "auto",
) -> dict:
    """Train one method once on a named train set (all its categories) into ``out_dir``.

    ``train_set_cfg`` is the config entry with its categories resolved and its dataset's
    ``geometry``; ``files`` may name each category's cached frozen stream (``frozen``: the
    ``.npz``, ``frozen_tokens``: the ``.npy``). Resume state lives under ``resume_root``, keyed
    by a hash of everything that shapes the training, so an interrupted job continues and a
    changed config starts afresh.
    """
    from iadbench.methods import build_method
    from iadbench.training import resume_dir_for

    method = build_method(method_cfg, device=device)
    categories = list(train_set_cfg["categories"])
    npys, indexes = list(files.get("npy") or []), list(files.get("index") or [])
    texts = list(files.get("text") or [])
    frozen = list(zip(files.get("frozen_tokens") or [], files.get("frozen") or []))
    parts = []
    for i, category in enumerate(categories):
        part_files = {"manifest": files["manifest"]}
        if npys:
            part_files.update(npy=npys[i], index=indexes[i])
        if texts:
            part_files["text"] = texts[i]
        parts.append(
            method_inputs(
                method_cfg,
                part_files,
                backbone_cfg,
                train_set_cfg["geometry"],
                category,
                train_set_cfg["split"],
            )
        )
        if frozen:
            from iadbench.pipeline.clip import cached_frozen

            tokens, meta = frozen[i]
            parts[-1].cached["frozen"] = cached_frozen(
                tokens, meta, backbone_cfg, train_set_cfg["geometry"]
            )
    shaping = {"method": method_cfg, "backbone": backbone_cfg, "train_set": train_set_cfg}
    resume_dir = resume_dir_for(resume_root, method_name, train_set_name, params=shaping)
    log.info(
        "training %s on %s (%s %s: %s)",
        method_name,
        train_set_name,
        train_set_cfg["dataset"],
        train_set_cfg["split"],
        ", ".join(categories),
    )
    with atomic_dir(out_dir) as tmp:
        return method.train(parts, Path(tmp), resume_dir)


def score_method(
    method_cfg: dict,
    backbone_cfg: dict | None,
    geometry: dict,
    files: Mapping[str, str],
    category: str,
    split: str,
    scores_out: str | Path,
    maps_out: str | Path,
    device: str = "auto",
    view_options: Mapping | None = None,
) -> pd.DataFrame:
    """Score one (category, split): ``scores.parquet`` (one row per image) + ``maps.npy``."""
    from iadbench.methods import build_method

    method = build_method(method_cfg, device=device)
    inputs = method_inputs(method_cfg, files, backbone_cfg, geometry, category, split, view_options)
    if "embeddings" in inputs.cached:  # a score reads one split: {role: EmbeddingSet}
        inputs.cached["embeddings"] = inputs.cached["embeddings"].get(split, {})
    crop = Geometry.from_config(geometry).crop
    state = files.get("state")
    scores, maps, *extra = method.score(Path(state) if state else None, inputs, (crop, crop))
    columns = extra[0] if extra else {}
    n = len(inputs.index)
    if maps is None:  # a method without pixel maps: an empty (N, 0, 0) array, never a fake map
        maps = np.zeros((n, 0, 0), dtype=np.float32)
    where = state or files["manifest"]
    if len(scores) != n or len(maps) != n or any(len(v) != n for v in columns.values()):
        raise CacheError(
            f"{where}: method returned {len(scores)} scores and {len(maps)} maps for {n} images"
        )
    if not np.isfinite(scores).all() or not np.isfinite(maps).all():
        raise CacheError(f"{where}: method produced NaN/Inf scores")
    table = inputs.index.assign(split=split)[SCORE_COLUMNS].reset_index(drop=True)
    table["score"] = np.asarray(scores, dtype=np.float64)
    for name, values in columns.items():
        table[name] = np.asarray(values)
    save_npy(maps_out, np.asarray(maps, dtype=np.float32))
    save_parquet(scores_out, table)
    return table
