"""Score items: the per-(dataset, method, category) score table, maps and manifest paths.

Shared by the curves/overlays and the cascade sections, which both look results up by
(dataset, method, category) and need the manifest rows behind each ``sample_id``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from iadbench.errors import CacheError

ITEM_KEYS = ("dataset", "method", "category", "scores", "maps", "manifest", "resize", "crop")

Key = tuple[str, str, str]


def check_item(item: Mapping[str, Any]) -> None:
    """Fail early, naming the item, when a key the report reads is absent."""
    missing = [k for k in ITEM_KEYS if k not in item]
    if missing:
        raise ValueError(f"score item {dict(item)} lacks keys {missing}")


def index_items(items: Sequence[Mapping[str, Any]]) -> dict[Key, Mapping[str, Any]]:
    """Items by (dataset, method, category), so one method's row can find another's."""
    return {(str(i["dataset"]), str(i["method"]), str(i["category"])): i for i in items}


def load_item(
    item: Mapping[str, Any], manifests: dict[str, pd.DataFrame]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The item's score table and its manifest indexed by ``sample_id`` (cached per path).

    Every scored sample must be in the manifest: the report reads images and masks from it.
    """
    check_item(item)
    table = pd.read_parquet(item["scores"])
    key = str(item["manifest"])
    if key not in manifests:
        manifests[key] = pd.read_parquet(key).set_index("sample_id")
    unknown = set(table["sample_id"]) - set(manifests[key].index)
    if unknown:
        raise CacheError(f"{item['scores']}: samples not in {key}: {sorted(unknown)[:3]}")
    return table, manifests[key]
