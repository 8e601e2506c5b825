"""Trained methods in the report: the cross-dataset table and the per-epoch loss curves.

The table reads the summary only (rows whose method has a ``train_on``); the curves read the
``loss_log.csv`` (written by :mod:`iadbench.training.loop`) of each model trained on a train set
and of each per-dataset (multi-class) model. The summary step
also writes the table as ``cross_dataset.csv`` (numbers) and ``.md``, for readers of files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from iadbench.errors import CacheError
from iadbench.io import save_text

from .figures import new_figure
from .html import Page, table
from .summary import has_values, load_summary, mean_std, metric_cols

CROSS_METRICS = (("image_auroc", "I-AUROC"), ("pixel_auroc", "P-AUROC"), ("aupro", "AUPRO"))
CROSS_KEYS = ["method", "train_on", "dataset"]
CROSS_CAPTION = (
    "Cross-dataset results, %: trained once on a train set, scored on another dataset. "
    "Macro (mean over categories) is the headline; micro pools every image/pixel."
)


def _cross_groups(summary: pd.DataFrame):
    """((method, train set, dataset), macro/micro rows over seeds) of the trained methods; the
    method is the grid's base entry, so its seeds fall in one group."""
    if not has_values(summary, "train_on"):
        return []
    trained = summary[summary["train_on"].notna() & summary["average"].isin(["macro", "micro"])]
    name = trained["base"].fillna(trained["method"]) if "base" in trained else trained["method"]
    return list(trained.assign(method=name).groupby(CROSS_KEYS, sort=True))


def _seeds(group: pd.DataFrame) -> int:
    return int(group["seed"].nunique()) if has_values(group, "seed") else 1


def cross_dataset_frame(summary: pd.DataFrame) -> pd.DataFrame | None:
    """One row per (method, train set, dataset, macro | micro): every metric's mean and sample
    std over seeds (fractions, as in ``metrics.csv``; std n/a with one seed)."""
    records = []
    for (method, train_on, dataset), group in _cross_groups(summary):
        for average in ("macro", "micro"):
            rows = group[group["average"] == average]
            record = {"method": method, "train_on": train_on, "dataset": dataset}
            record.update(average=average, seeds=_seeds(group))
            for col in metric_cols(rows):
                values = pd.to_numeric(rows[col], errors="coerce")
                record[f"{col}_mean"], record[f"{col}_std"] = values.mean(), values.std(ddof=1)
            records.append(record)
    return pd.DataFrame(records) if records else None


def cross_dataset_display(summary: pd.DataFrame) -> pd.DataFrame | None:
    """Train set × target dataset, macro and micro side by side (mean ± std over seeds, %)."""
    records = []
    for (method, train_on, dataset), group in _cross_groups(summary):
        record = {"method": method, "trained on": train_on, "scored on": dataset}
        for col, label in CROSS_METRICS:
            if col not in group:
                continue
            for average in ("macro", "micro"):
                record[f"{label} {average}"] = mean_std(group.loc[group["average"] == average, col])
        record["seeds"] = _seeds(group)
        records.append(record)
    return pd.DataFrame(records).astype(str) if records else None


def cross_dataset_table(summary: pd.DataFrame) -> str | None:
    """The report's cross-dataset table (see :func:`cross_dataset_display`)."""
    frame = cross_dataset_display(summary)
    if frame is None:
        return None
    numeric = [c for c in frame.columns if c.endswith(("macro", "micro"))]
    return table(frame, CROSS_CAPTION, numeric=numeric)


def _markdown(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---:" if c.endswith(("macro", "micro")) else "---" for c in frame) + "|"
    body = ["| " + " | ".join(row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def write_cross_dataset(summary_csv: str | Path, csv_out: str | Path, md_out: str | Path) -> None:
    """``cross_dataset.csv`` (means and stds per average) and its Markdown table, from the
    summary; a note instead of a table when no trained method has a result yet."""
    summary = load_summary(summary_csv)
    numbers, shown = cross_dataset_frame(summary), cross_dataset_display(summary)
    columns = [*CROSS_KEYS, "average", "seeds"]
    numbers = numbers if numbers is not None else pd.DataFrame(columns=columns)
    save_text(csv_out, numbers.to_csv(index=False, float_format="%.6f"))
    body = _markdown(shown) if shown is not None else "No method trained on a train set.\n"
    save_text(md_out, f"{CROSS_CAPTION}\n\n{body}")


def load_loss_logs(models: Mapping[str, str | Path]) -> dict[str, pd.DataFrame]:
    """label (method, or "method (dataset)") -> its model folder's ``loss_log.csv``."""
    logs = {}
    for method, folder in models.items():
        path = Path(folder) / "loss_log.csv"
        if not path.is_file():
            raise CacheError(f"{path}: the trained model {method!r} has no loss log")
        logs[method] = pd.read_csv(path)
    return logs


def loss_figure(logs: Mapping[str, pd.DataFrame]) -> Figure | None:
    """One panel per loss column (total, then each component), one line per method."""
    columns = ["train_loss"]
    for frame in logs.values():
        columns += [c for c in frame.columns if c.startswith("loss_") and c not in columns]
    if not logs:
        return None
    fig = new_figure(3.2 * len(columns), 2.8)
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    for ax, col in zip(axes, columns):
        for method, frame in logs.items():
            if col in frame:
                ax.plot(frame["epoch"], frame[col], marker="o", label=method)
        ax.set_title("total" if col == "train_loss" else col.removeprefix("loss_"))
        ax.set_xlabel("epoch")
    axes[0].set_ylabel("mean loss over the epoch")
    axes[0].legend(fontsize="small")  # the total panel has every method
    return fig


def add_training_section(
    page: Page, summary: pd.DataFrame, models: Mapping[str, str | Path] | None
) -> None:
    """ "Trained methods": the cross-dataset table and the loss curves, when there are any."""
    cross = cross_dataset_table(summary)
    fig = loss_figure(load_loss_logs(models)) if models else None
    if cross is None and fig is None:
        return
    from .figures import to_png

    sec = page.section("Trained methods")
    if cross is not None:
        sec.add(cross)
    if fig is not None:
        caption = "Training loss per epoch (loss_log.csv of each trained model)"
        sec.add(page.image("training_loss", to_png(fig), caption))
