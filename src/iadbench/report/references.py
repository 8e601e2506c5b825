"""Published numbers (``config/references.yaml``) set beside our macro rows.

A published dataset number is the macro mean over *all* of the dataset's categories; our run
may cover a few. The two are different quantities, so the comparison table says, row by row,
whether our mean covers the full category set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from iadbench.errors import ConfigError

from .html import paragraph, table
from .summary import has_values, percent, rows
from .tables import category_counts

REF_METRICS = (
    ("image_auroc", "I-AUROC"),
    ("pixel_auroc", "P-AUROC"),
    ("aupro", "AUPRO / PRO"),
    ("image_f1max", "I-F1max"),
)
# A source must be public (a paper, a repository at a commit), never a file on someone's disk.
LOCAL_FILE = re.compile(r"(^|\s)(/|\.\./|~/)\S|\.(md|txt|pdf|docx?)\b", re.IGNORECASE)
_REQUIRED = (
    "name",
    "kind",
    "backbone",
    "dataset",
    "averaging",
    "metrics",
    "source",
    "verification",
)


@dataclass(frozen=True)
class Reference:
    """One published result; metric values are in %."""

    name: str
    kind: str
    backbone: str
    backbone_model: str | None
    dataset: str
    averaging: str
    resolution: str
    metrics: dict[str, float]
    source: str
    verification: str
    settings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class References:
    """The reference entries and the datasets they refer to (name, category count, aliases)."""

    entries: list[Reference]
    datasets: dict[str, dict]

    def dataset_key(self, ours: str) -> str | None:
        """The reference dataset our dataset name is an alias of, if any."""
        for key, info in self.datasets.items():
            if _norm(ours) in {_norm(a) for a in info.get("aliases", [key])}:
                return key
        return None


def _norm(name: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def load_references(path: str | Path) -> References:
    """Read and check the YAML file; an error names the file and the faulty entry."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    datasets = data.get("datasets") or {}
    for key, info in datasets.items():
        if not isinstance(info, dict) or not isinstance(info.get("categories"), int):
            raise ConfigError(f"{path}: dataset {key!r} needs an integer 'categories'")
    entries = []
    for i, raw in enumerate(data.get("references") or []):
        missing = [k for k in _REQUIRED if k not in raw]
        if missing:
            raise ConfigError(f"{path}: reference #{i} lacks {missing}")
        if raw["dataset"] not in datasets:
            raise ConfigError(f"{path}: reference {raw['name']!r}: unknown dataset")
        if LOCAL_FILE.search(str(raw["source"])):
            raise ConfigError(
                f"{path}: reference {raw['name']!r}: source {raw['source']!r} names a local "
                "file; cite a paper or a public repository (owner/name @commit)"
            )
        entries.append(
            Reference(
                name=str(raw["name"]),
                kind=str(raw["kind"]),
                backbone=str(raw["backbone"]),
                backbone_model=raw.get("backbone_model"),
                dataset=str(raw["dataset"]),
                averaging=str(raw["averaging"]),
                resolution=str(raw.get("resolution", "not stated")),
                metrics={k: float(v) for k, v in raw["metrics"].items()},
                source=str(raw["source"]),
                verification=str(raw["verification"]),
                settings=dict(raw.get("settings") or {}),
            )
        )
    return References(entries, datasets)


def _kind_matches(ref: Reference, row: pd.Series, has_kind: bool) -> bool:
    """Same method kind; without a ``kind`` column, the kind must appear in the method name."""
    if has_kind:
        return _norm(row["kind"]) == _norm(ref.kind)
    return _norm(ref.kind) in _norm(row["method"])


def _backbone_of(row: pd.Series) -> str:
    for col in ("backbone_model", "backbone"):
        if col in row.index and pd.notna(row[col]):
            return str(row[col])
    return "?"


def _ref_row(ref: Reference, refs: References, note: str) -> dict:
    settings = ", ".join(f"{k}={v}" for k, v in ref.settings.items())
    dataset = refs.datasets[ref.dataset]
    row = {
        "": "published",
        "name": f"{dataset.get('name', ref.dataset)} / {ref.name}"
        + (f" ({settings})" if settings else ""),
        "backbone": ref.backbone,
        "categories": str(dataset["categories"]),
        "resolution": ref.resolution,
    }
    row.update({label: _pct(ref.metrics.get(key)) for key, label in REF_METRICS})
    row.update(comparability=note, source=f"{ref.source} [{ref.verification}]")
    return row


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _our_row(row: pd.Series, n_ours: int, n_full: int) -> dict:
    size = "n/a"
    if pd.notna(row.get("eval_height")) and pd.notna(row.get("eval_width")):
        size = f"{int(row['eval_height'])}×{int(row['eval_width'])}"
    if n_ours >= n_full:
        note = f"full category set ({n_ours}/{n_full})"
    else:
        note = f"NOT comparable: mean of {n_ours} of {n_full} categories"
    out = {
        "": "ours",
        "name": f"{row['dataset']} / {row['method']}",
        "backbone": _backbone_of(row),
        "categories": str(n_ours),
        "resolution": size,
    }
    out.update({label: percent(row.get(key)) for key, label in REF_METRICS})
    out.update(comparability=note, source="this run")
    return out


def _matches(macro: pd.DataFrame, refs: References, has_kind: bool) -> list[tuple]:
    """(our rows, their references) per matching (our dataset, reference kind), in order."""
    groups = []
    for dataset, ours in macro.groupby("dataset", sort=True):
        key = refs.dataset_key(str(dataset))
        for kind in dict.fromkeys(r.kind for r in refs.entries if r.dataset == key):
            entries = [r for r in refs.entries if r.dataset == key and r.kind == kind]
            hits = ours[[_kind_matches(entries[0], row, has_kind) for _, row in ours.iterrows()]]
            if not hits.empty:
                groups.append((hits, entries))
    return groups


def comparison_blocks(summary: pd.DataFrame, refs: References) -> list[str]:
    """HTML: the caveat, our matching macro rows followed by their references, the others.

    Per (dataset, method kind): our macro rows, each marked comparable or not by its category
    count, then every published entry of that kind once, saying which of our rows (if any)
    share its backbone.
    """
    counts = category_counts(summary)
    has_kind = has_values(summary, "kind")
    records, classes, used = [], [], set()
    for ours, entries in _matches(rows(summary, "macro"), refs, has_kind):
        n_full = int(refs.datasets[entries[0].dataset]["categories"])
        for _, row in ours.iterrows():
            record = _our_row(row, counts.get((row["dataset"], row["method"]), 0), n_full)
            records.append(record)
            classes.append("warn" if record["comparability"].startswith("NOT") else "")
        for ref in entries:
            same = [
                str(row["method"])
                for _, row in ours.iterrows()
                if ref.backbone_model is not None
                and _norm(ref.backbone_model) == _norm(_backbone_of(row))
            ]
            note = f"same backbone as {', '.join(same)}" if same else "other backbone"
            records.append(_ref_row(ref, refs, note))
            classes.append("ref")
            used.add(ref.name)
    blocks = [
        paragraph(
            "Published numbers are macro means over every category of the dataset (e.g. all 15 "
            "of MVTec AD). Our macro mean over a subset of categories is a different quantity "
            "and is NOT comparable to them; rows where this applies are marked. Published values "
            "are as reported by the source, tagged V-code (read in the authors' or a "
            "reproduction's repository) or V-sec (read in a secondary source).",
            note=True,
        )
    ]
    if records:
        frame = pd.DataFrame(records)
        numeric = [label for _, label in REF_METRICS]
        caption = "Our macro rows beside published numbers for the same method kind, %"
        blocks.append(table(frame, caption, numeric=numeric, row_classes=classes))
    else:
        blocks.append(paragraph("None of our rows matches a published (method kind, dataset)."))
    context = [r for r in refs.entries if r.name not in used]
    if context:
        frame = pd.DataFrame([_ref_row(r, refs, "context") for r in context]).drop(columns="")
        caption = "Other published numbers (context only), %"
        blocks.append(table(frame, caption, numeric=[label for _, label in REF_METRICS]))
    return blocks
