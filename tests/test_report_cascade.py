"""Report sections for the gate -> heatmap cascade and for latency, on a small synthetic tree."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_report import Tables

from iadbench.metrics import summarise
from iadbench.report import build_report
from iadbench.report.cascade import (
    comparison_rows,
    comparison_table,
    confusion,
    confusion_rows,
    load_sweeps,
    sweep_figure,
    sweep_series,
)
from iadbench.report.cascade_samples import sample_rows
from iadbench.report.latency import method_latency

SIZE = 16
USES = {"gate": "gate", "heatmap": "pc"}
# Per category: labels, the cascade's final scores, routes, and its operating threshold.
CASES = {
    "alpha": dict(
        labels=[0, 0, 1, 1, 1],
        scores=[0.1, 0.7, 0.8, 0.3, 0.9],
        routes=["gate", "heatmap", "heatmap", "gate", "gate"],
        threshold=0.5,
        counts={"TN": 1, "FP": 1, "FN": 1, "TP": 2},
    ),
    "beta": dict(
        labels=[0, 0, 0, 1, 1, 1],
        scores=[0.2, 0.4, 0.6, 0.55, 0.7, 0.95],
        routes=["gate", "heatmap", "gate", "heatmap", "heatmap", "gate"],
        threshold=0.5,
        counts={"TN": 2, "FP": 1, "FN": 0, "TP": 3},
    ),
}
I_AUROC = {"gate": 0.81, "pc": 0.93, "casc": 0.9}
LATENCY = {  # (method, category) -> (mean ms, p95 ms)
    ("gate", "alpha"): (10.0, 12.0),
    ("gate", "beta"): (14.0, 16.0),
    ("pc", "alpha"): (40.0, 50.0),
    ("pc", "beta"): (44.0, 52.0),
    ("casc", "alpha"): (26.0, 48.0),
    ("casc", "beta"): (30.0, 60.0),
}
KINDS = {"gate": "classifier", "pc": "patchcore", "casc": "cascade"}


def _operating(case: dict) -> dict:
    c = case["counts"]
    precision, recall = c["TP"] / (c["TP"] + c["FP"]), c["TP"] / (c["TP"] + c["FN"])
    return {
        "threshold": case["threshold"],
        "accuracy": (c["TP"] + c["TN"]) / sum(c.values()),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall),
    }


def write_summary(path: Path) -> pd.DataFrame:
    records = []
    for method, kind in KINDS.items():
        for k, (category, case) in enumerate(CASES.items()):
            row = {
                "dataset": "toy",
                "method": method,
                "category": category,
                "kind": kind,
                "image_auroc": I_AUROC[method] - 0.02 * k,
                "image_ap": 0.8,
                **_operating(case),
            }
            if method != "casc":  # the single models' operating points differ from the cascade's
                row.update(threshold=0.42, f1=0.7 + 0.1 * k)
            if method == "casc":
                row["heatmap_call_rate"] = case["routes"].count("heatmap") / len(case["routes"])
            if method == "pc":
                row.update(pixel_auroc=0.95, aupro=0.9, fpr_limit=0.3)
            records.append(row)
    summary = summarise(pd.DataFrame(records))
    summary.to_csv(path, index=False, float_format="%.6f")
    return summary


def write_tree(root: Path) -> dict:
    """Images, a manifest, score tables and maps for gate, pc and casc; build_report kwargs."""
    rng = np.random.default_rng(0)
    records, items = [], []
    for category, case in CASES.items():
        for i, label in enumerate(case["labels"]):
            path = root / "data" / category / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), np.uint8)).save(path)
            records.append(
                dict(
                    sample_id=f"{category}/test/{i}",
                    category=category,
                    split="test",
                    label=label,
                    defect_type="dent" if label else "good",
                    image_path=str(path),
                    mask_path=None,
                )
            )
    manifest = pd.DataFrame(records)
    manifest_path = root / "manifest.parquet"
    manifest.to_parquet(manifest_path, index=False)
    for category, case in CASES.items():
        test = manifest[manifest["category"] == category].reset_index(drop=True)
        base = test[["sample_id", "category", "label", "defect_type"]]
        n = len(test)
        p_gate = np.asarray(case["scores"]) * 0.9 + 0.05
        p_heatmap = np.asarray(case["scores"])
        tables = {
            "gate": (base.assign(score=p_gate, margin=p_gate - 0.5), np.zeros((n, 0, 0))),
            "pc": (
                base.assign(score=10 * p_heatmap + 30),
                rng.random((n, SIZE, SIZE)).astype(np.float32),
            ),
            "casc": (
                base.assign(
                    score=case["scores"],
                    route=case["routes"],
                    p_gate=p_gate,
                    p_heatmap=p_heatmap,
                ),
                np.zeros((n, 0, 0), np.float32),
            ),
        }
        for method, (table, maps) in tables.items():
            out = root / "scores" / method / category
            out.mkdir(parents=True)
            table.to_parquet(out / "scores.parquet", index=False)
            np.save(out / "maps.npy", maps)
            items.append(
                dict(
                    dataset="toy",
                    method=method,
                    category=category,
                    scores=str(out / "scores.parquet"),
                    maps=str(out / "maps.npy"),
                    manifest=str(manifest_path),
                    resize=SIZE,
                    crop=SIZE,
                )
            )
    summary = root / "metrics.csv"
    write_summary(summary)
    latency = root / "latency.csv"
    pd.DataFrame(
        [
            dict(dataset="toy", method=m, category=c, kind=KINDS[m], n_images=4, mean_ms=mean,
                 p95_ms=p95, device="cpu", batch_size=1)
            for (m, c), (mean, p95) in LATENCY.items()
        ]
    ).to_csv(latency, index=False)  # fmt: skip
    sweeps = root / "cascade_sweep.csv"
    sweep_rows = []
    for category, chosen, degenerate in (("alpha", (0.2, 0.8), False), ("beta", (0.1, 0.9), True)):
        for t_low, t_high, rate, f1 in ((0.1, 0.9, 0.8, 0.95), (0.2, 0.8, 0.5, 0.9),
                                        (0.3, 0.7, 0.2, 0.6)):  # fmt: skip
            sweep_rows.append(
                dict(
                    dataset="toy",
                    method="casc",
                    category=category,
                    t_low=t_low,
                    t_high=t_high,
                    heatmap_call_rate=rate,
                    auroc=0.9,
                    threshold=0.5,
                    accuracy=0.8,
                    precision=0.8,
                    recall=0.8,
                    f1=f1,
                    degenerate_scores=degenerate,
                    chosen=(t_low, t_high) == chosen,
                )
            )
    pd.DataFrame(sweep_rows).to_csv(sweeps, index=False)
    return dict(
        summary_csv=summary,
        out_html=root / "out" / "report.html",
        png_dir=root / "out" / "figures",
        score_items=items,
        latency_csv=latency,
        sweeps_csv=sweeps,
        cascades={"casc": USES},
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, str]:
    kwargs = write_tree(tmp_path_factory.mktemp("cascade"))
    result = build_report(**kwargs)
    return kwargs, result, Path(kwargs["out_html"]).read_text()


def _not_shown(html: str) -> str:
    (skipped,) = re.findall(r'<section id="not-shown">(.*?)</section>', html, re.S)
    return skipped


def test_confusion_counts_score_at_or_above_threshold_is_anomalous():
    assert confusion([0, 0, 1, 1, 1], [0.1, 0.7, 0.8, 0.3, 0.9], 0.5) == {
        "TN": 1, "FP": 1, "FN": 1, "TP": 2,
    }  # fmt: skip
    assert confusion([0, 1], [0.5, 0.5], 0.5) == {"TN": 0, "FP": 1, "FN": 0, "TP": 1}
    assert confusion([0, 1], [0.2, 0.9], float("nan")) is None
    with pytest.raises(ValueError):
        confusion([0, 1, 1], [0.2, 0.9], 0.5)


def test_confusion_rows_use_the_summary_threshold_and_flag_mismatches():
    cascade = pd.DataFrame(
        [dict(category=c, **_operating(case)) for c, case in CASES.items()]
    ).assign(heatmap_call_rate=0.4)
    tables = {
        c: pd.DataFrame({"label": case["labels"], "score": case["scores"]})
        for c, case in CASES.items()
    }
    frame = confusion_rows(cascade, tables).set_index("category")
    for category, case in CASES.items():
        assert frame.loc[category, ["TN", "FP", "FN", "TP"]].to_dict() == case["counts"]
    assert frame["consistent"].all()
    wrong = confusion_rows(cascade.assign(accuracy=0.1), {"alpha": tables["alpha"]})
    assert wrong.set_index("category").loc["alpha", "consistent"] == False  # noqa: E712
    beta = wrong.set_index("category").loc["beta"]
    assert pd.isna(beta["TP"]) and beta["consistent"]  # no score table: counts n/a


def test_sweep_series_marks_the_chosen_pair_and_degenerate_sweeps(tmp_path):
    kwargs = write_tree(tmp_path)
    sweeps = load_sweeps(kwargs["sweeps_csv"])
    assert sweeps["chosen"].dtype == bool and sweeps["chosen"].sum() == 2
    alpha, beta = sweep_series(sweeps, "toy", "casc")
    assert (alpha.category, alpha.label, alpha.degenerate) == ("alpha", "0.2/0.8", False)
    assert (beta.category, beta.label, beta.degenerate) == ("beta", "0.1/0.9", True)
    assert alpha.chosen["heatmap_call_rate"] == 0.5 and len(alpha.points) == 3
    assert sweep_series(sweeps, "toy", "other") == []
    unflagged = sweep_series(sweeps.assign(chosen=False), "toy", "casc")
    assert [s.label for s in unflagged] == [None, None]
    # The figure annotates exactly the chosen pairs (the text artists, not pixels).
    fig = sweep_figure([alpha, beta], "toy / casc")
    texts = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert texts == {"0.2/0.8", "0.1/0.9"}


def test_sweep_flags_parse_strings_and_missing_columns(tmp_path):
    path = tmp_path / "s.csv"
    pd.DataFrame(
        dict(dataset=["d"] * 2, method=["c"] * 2, category=["a"] * 2, t_low=[0.1, 0.2],
             t_high=[0.9, 0.8], heatmap_call_rate=[0.5, 0.4], f1=[0.8, 0.7],
             chosen=["False", "True"])
    ).to_csv(path, index=False)  # fmt: skip
    frame = load_sweeps(path)
    assert frame["chosen"].tolist() == [False, True]
    assert not frame["degenerate_scores"].any()


def test_sample_rows_cover_both_routes_and_labels_deterministically():
    case = CASES["alpha"]
    table = pd.DataFrame(
        {
            "sample_id": [f"alpha/test/{i}" for i in range(5)],
            "label": case["labels"],
            "score": case["scores"],
            "route": case["routes"],
        }
    )
    # heatmap/anomalous 2, heatmap/normal 1, gate/anomalous lowest first 3, gate/normal 0; then 4.
    assert sample_rows(table) == [2, 1, 3, 0, 4]
    assert sample_rows(table, 3) == [2, 1, 3]
    assert sample_rows(table.iloc[::-1].reset_index(drop=True)) == [2, 3, 1, 4, 0]


def test_comparison_rows_put_the_three_models_side_by_side(tmp_path):
    kwargs = write_tree(tmp_path)
    summary = pd.read_csv(kwargs["summary_csv"])
    latency = pd.read_csv(kwargs["latency_csv"])
    frame = comparison_rows(summary, "toy", "casc", USES, latency)
    assert frame["category"].tolist() == ["alpha"] * 3 + ["beta"] * 3 + ["macro"] * 3
    assert frame["role"].tolist()[:3] == ["gate only", "heatmap only", "cascade"]
    alpha = frame[frame["category"] == "alpha"].set_index("method")
    assert alpha["heatmap_call_rate"].tolist() == [0.0, 1.0, pytest.approx(0.4)]
    assert alpha.loc["pc", "image_auroc"] == pytest.approx(0.93)
    assert alpha.loc["casc", "mean_ms"] == 26.0
    macro = frame[frame["category"] == "macro"].set_index("method")
    assert macro.loc["gate", "mean_ms"] == pytest.approx(12.0)
    assert macro.loc["casc", "image_auroc"] == pytest.approx(0.89)
    assert "mean_ms" not in comparison_rows(summary, "toy", "casc", USES, None).columns
    per_method = method_latency(latency).set_index("method")
    assert per_method.loc["pc", ["mean_ms", "p95_ms"]].tolist() == [42.0, 51.0]


def test_report_has_latency_and_cascade_sections(built):
    kwargs, result, html = built
    sections = result["sections"]
    assert sections.index("Latency") == sections.index("Results") + 1
    assert "Cascade" in sections and "Not shown" in sections
    figures = result["figures"]
    assert "latency-toy.png" in figures and "cascade-sweep-toy-casc.png" in figures
    assert {"cascade-samples-toy-casc-alpha.png", "cascade-samples-toy-casc-beta.png"} <= set(
        figures
    )
    assert sorted(p.name for p in Path(kwargs["png_dir"]).iterdir()) == sorted(figures)
    # Empty maps (gate, casc): no overlay for them, but their ROC/PR curves are drawn.
    assert [f for f in figures if f.startswith("overlay")] == [
        "overlay-toy-pc-alpha.png",
        "overlay-toy-pc-beta.png",
    ]
    assert {"curves-toy-alpha.png", "curves-toy-beta.png"} <= set(figures)
    assert "degenerate val scores in beta" in html
    skipped = _not_shown(html)
    assert "latency" not in skipped.lower() and "sweep" not in skipped.lower()


def test_report_tables_hold_the_counts_and_latency(built):
    _, _, html = built
    tables = Tables(html)
    matrix = {r["category"]: r for r in tables.records("toy / casc: test confusion matrix")}
    for category, case in CASES.items():
        assert {k: int(matrix[category][k]) for k in ("TN", "FP", "FN", "TP")} == case["counts"]
        assert matrix[category]["threshold"] == "0.5"
    assert matrix["alpha"]["accuracy"] == "60.0" and matrix["alpha"]["heatmap call rate"] == "40.0"
    compare = tables.records("toy / casc: gate alone")
    assert len(compare) == 9
    row = next(r for r in compare if r["category"] == "beta" and r["model"] == "heatmap only: pc")
    assert row["I-AUROC"] == "91.0" and row["latency mean ms"] == "44.00"
    assert row["heatmap call rate"] == "100.0"
    latency = tables.records("toy: latency per image")
    assert len(latency) == 6
    assert latency[0] == {
        "method": "casc", "kind": "cascade", "category": "alpha", "n images": "4",
        "mean ms": "26.00", "p95 ms": "48.00", "device": "cpu", "batch size": "1",
    }  # fmt: skip
    assert "not part of metrics.csv" in html


def test_missing_latency_and_sweeps_are_listed_as_not_shown(tmp_path):
    kwargs = write_tree(tmp_path)
    kwargs.update(latency_csv=None, sweeps_csv=None)
    result = build_report(**kwargs)
    html = Path(kwargs["out_html"]).read_text()
    skipped = _not_shown(html)
    assert "Latency: no latency.csv given" in skipped
    assert "Cascade sweep: no cascade_sweep.csv given" in skipped
    assert "Latency" not in result["sections"] and "Cascade" in result["sections"]
    assert not [f for f in result["figures"] if f.startswith(("latency", "cascade-sweep"))]
    header = Tables(html).find("toy / casc: gate alone")["header"]
    assert "latency mean ms" not in header


def test_without_cascades_nothing_cascade_is_shown_or_missing(tmp_path):
    kwargs = write_tree(tmp_path)
    kwargs.update(cascades={}, sweeps_csv=None, latency_csv=None)
    result = build_report(**kwargs)
    html = Path(kwargs["out_html"]).read_text()
    assert "Cascade" not in result["sections"] and "Latency" not in result["sections"]
    assert "cascade" not in _not_shown(html).lower()
    assert "latency" not in _not_shown(html).lower()


def test_heatmap_method_without_maps_gives_image_only_rows(tmp_path):
    kwargs = write_tree(tmp_path)
    kwargs.update(cascades={"casc": {"gate": "gate", "heatmap": "gate"}})
    result = build_report(**kwargs)
    html = Path(kwargs["out_html"]).read_text()
    assert "cascade-samples-toy-casc-alpha.png" in result["figures"]
    assert "gate has no pixel maps: image only" in html


def test_unknown_cascade_and_bad_uses(tmp_path):
    kwargs = write_tree(tmp_path)
    result = build_report(**{**kwargs, "cascades": {"nope": USES}})
    assert "Cascade" not in result["sections"]
    assert "Cascade nope: no rows for it in metrics.csv" in Path(kwargs["out_html"]).read_text()
    with pytest.raises(ValueError, match="uses lacks"):
        build_report(**{**kwargs, "cascades": {"casc": {"gate": "gate"}}})


def test_comparison_rows_give_the_recall_lost_at_the_operating_point(tmp_path):
    kwargs = write_tree(tmp_path)
    summary = pd.read_csv(kwargs["summary_csv"])
    pc_alpha = (summary["method"] == "pc") & (summary["category"] == "alpha")
    summary.loc[pc_alpha, "recall"] = 1.0  # the heatmap method alone finds every anomaly
    frame = comparison_rows(summary, "toy", "casc", USES, None)
    alpha = frame[frame["category"] == "alpha"].set_index("method")
    # the cascade's and the gate's recall at their thresholds: TP 2 of 3 anomalies (CASES)
    assert alpha["recall"].tolist() == pytest.approx([2 / 3, 1.0, 2 / 3])
    assert alpha["recall_lost"].tolist() == pytest.approx([1 / 3, 0.0, 1 / 3])
    html = comparison_table(frame, "toy / casc")
    assert "recall lost vs heatmap" in html and "33.3" in html
