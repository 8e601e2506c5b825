"""Report, per defect type: a method × defect-class table and heat map from a tiny summary."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
from PIL import Image

from iadbench.metrics import summarise
from iadbench.report import build_report
from iadbench.report.defects import ALL, defect_heatmap, defect_matrix
from iadbench.report.summary import config_cols, seed_groups

DEFECTS = (
    "Burnthrough", "Crater_Cracks", "Excessive_Convexity", "Excessive_Penetration",
    "Lack_of_Fusion", "Overlap", "Porosity", "Porosity_w_Excessive_Penetration", "Spatter",
    "Undercut", "Warping",
)  # fmt: skip
METHODS = ("late_fusion", "late_fusion[audio]", "late_fusion[video]", "patchcore_views")


def _summary(seed_methods: tuple[str, ...] = ()) -> pd.DataFrame:
    """One weld category: every method with an AUROC per defect class (value = its position)."""
    records = []
    for i, method in enumerate(METHODS + seed_methods):
        row = {"dataset": "weld", "method": method, "category": "weld", "kind": "late_fusion",
               "base": method, "seed": 0, "image_auroc": 0.80 + 0.01 * i,
               "pixel_auroc": np.nan, "n_images": 40}  # fmt: skip
        row.update({f"auroc_{d}": 0.5 + 0.04 * j + 0.001 * i for j, d in enumerate(DEFECTS)})
        records.append(row)
    return summarise(pd.DataFrame(records))


def test_matrix_puts_pooled_first_then_each_defect_class():
    matrix = defect_matrix(_summary().query("average == 'per_category'"))
    assert list(matrix.index) == list(METHODS)
    assert list(matrix.columns) == [ALL, *DEFECTS]
    assert matrix.loc["late_fusion[audio]", "Porosity"] == 0.5 + 0.04 * 6 + 0.001
    assert matrix.loc["late_fusion", ALL] == 0.80
    assert defect_matrix(pd.DataFrame({"method": ["m"], "image_auroc": [0.9]})).empty


def test_heatmap_of_twelve_classes_stays_readable():
    matrix = defect_matrix(_summary().query("average == 'per_category'"))
    fig = defect_heatmap(matrix, "weld")
    ax, bar = fig.axes  # the heat map and its colour bar
    assert len(ax.texts) == matrix.size  # every cell annotated
    assert ax.get_xticklabels()[8].get_text() == "Porosity w\nExcessive\nPenetration"
    assert bar.get_ylabel().startswith("AUROC")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    width, height = Image.open(buffer).size
    assert 900 <= width <= 1300 and height < 400
    assert defect_heatmap(matrix.iloc[:0], "empty") is None


def test_report_has_the_section_only_with_per_defect_columns(tmp_path):
    summary = tmp_path / "metrics.csv"
    _summary().to_csv(summary, index=False)
    result = build_report(summary, tmp_path / "report.html", tmp_path / "figs")
    assert "Per defect type" in result["sections"]
    assert "defects-weld-weld.png" in result["figures"]
    assert (tmp_path / "figs" / "defects-weld-weld.png").stat().st_size > 0
    html = (tmp_path / "report.html").read_text()
    (section,) = re.findall(r'<section id="per-defect-type">(.*?)</section>', html, re.S)
    assert "weld / weld: I-AUROC per defect type, %" in section
    assert "<th>Porosity_w_Excessive_Penetration</th>" in section
    row = re.search(r"<td>late_fusion\[video\]</td>(.*?)</tr>", section).group(1)
    assert re.findall(r'<td class="num">([^<]*)</td>', row)[:3] == ["82.0", "50.2", "54.2"]
    plain = tmp_path / "plain.csv"
    _summary().drop(columns=[f"auroc_{d}" for d in DEFECTS]).to_csv(plain, index=False)
    result = build_report(plain, tmp_path / "plain.html", tmp_path / "plain_figs")
    assert "Per defect type" not in result["sections"]


def test_per_defect_columns_are_results_not_configuration():
    frame = _summary()
    assert not any(c.startswith("auroc_") for c in config_cols(frame))
    seeds = pd.concat([frame.assign(seed=0), frame.assign(seed=1, auroc_Spatter=0.1)])
    seeds = seeds.assign(method=seeds["method"] + "_s" + seeds["seed"].astype(str))
    groups = seed_groups(seeds)
    assert len(groups) == len(METHODS)  # per base: seed 0 and 1, modalities apart
    assert all(len(g) == 2 for g in groups)
