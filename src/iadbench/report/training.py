"""Trained methods in the report: the cross-dataset table and the per-epoch loss curves.

The table reads the summary only (rows whose method has a ``train_on``); the curves read each
trained model's ``loss_log.csv`` (written by :mod:`iadbench.training.loop`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from iadbench.errors import CacheError

from .figures import new_figure
from .html import Page, table
from .summary import has_values, mean_std

CROSS_METRICS = (("image_auroc", "I-AUROC"), ("pixel_auroc", "P-AUROC"), ("aupro", "AUPRO"))


def cross_dataset_table(summary: pd.DataFrame) -> str | None:
    """Train set × target dataset, macro and micro side by side (mean ± std over seeds)."""
    if not has_values(summary, "train_on"):
        return None
    trained = summary[summary["train_on"].notna() & summary["average"].isin(["macro", "micro"])]
    name = trained["base"].fillna(trained["method"]) if "base" in trained else trained["method"]
    trained = trained.assign(config=name)
    records = []
    for (config, train_on, dataset), group in trained.groupby(
        ["config", "train_on", "dataset"], sort=True
    ):
        record = {"method": config, "trained on": train_on, "scored on": dataset}
        for col, label in CROSS_METRICS:
            if col not in group:
                continue
            for average in ("macro", "micro"):
                record[f"{label} {average}"] = mean_std(group.loc[group["average"] == average, col])
        record["seeds"] = int(group["seed"].nunique()) if "seed" in group else 1
        records.append(record)
    frame = pd.DataFrame(records)
    numeric = [c for c in frame.columns if c.endswith(("macro", "micro"))]
    caption = (
        "Cross-dataset results, %: trained once on a train set, scored on another dataset. "
        "Macro (mean over categories) is the headline; micro pools every image/pixel."
    )
    return table(frame.astype(str), caption, numeric=numeric)


def load_loss_logs(models: Mapping[str, str | Path]) -> dict[str, pd.DataFrame]:
    """method -> its model folder's ``loss_log.csv``."""
    logs = {}
    for method, folder in models.items():
        path = Path(folder) / "loss_log.csv"
        if not path.is_file():
            raise CacheError(f"{path}: the trained model of {method!r} has no loss log")
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
