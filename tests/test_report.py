"""HTML report: a synthetic results tree in, tables with the right numbers and figures out."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from iadbench.data.images import Geometry, load_mask
from iadbench.errors import CacheError, ConfigError, DataError
from iadbench.metrics import summarise
from iadbench.report import build_report
from iadbench.report.crossdomain import with_drops
from iadbench.report.overlays import extremes
from iadbench.report.references import load_references
from iadbench.report.summary import seed_groups

REPO = Path(__file__).resolve().parents[1]
CATEGORIES = ("alpha", "beta")
METHODS = {  # name -> optional config columns
    "pc_r18": dict(backbone="r18", backbone_model="resnet18", fusion="concat", feature_dim=384),
    "pc_r18_s1": dict(backbone="r18", backbone_model="resnet18", fusion="concat", feature_dim=384),
    "pc_wrn": dict(
        backbone="wrn50", backbone_model="wide_resnet50_2", fusion="weighted", feature_dim=1536
    ),
}
SEEDS = {"pc_r18": 0, "pc_r18_s1": 1, "pc_wrn": 0}
# Image AUROC per (method, category): distinct values so every table cell is checkable.
I_AUROC = {
    ("pc_r18", "alpha"): 0.9123,
    ("pc_r18", "beta"): 0.8011,
    ("pc_r18_s1", "alpha"): 0.9323,
    ("pc_r18_s1", "beta"): 0.7811,
    ("pc_wrn", "alpha"): 0.9876,
    ("pc_wrn", "beta"): 0.9544,
}
GEOMETRY = Geometry(32, 24)
N_FIGURES = 13  # bars 1 + curves 2 + overlays 3x2 + backbones 1 + fusion 1 + cross 1 + scatter 1


def _png(path: Path, array: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return str(path)


def _metric_row(method: str, category: str, extra: bool) -> dict:
    i_auroc = I_AUROC[(method, category)]
    row = {
        "dataset": "mvtec",
        "method": method,
        "category": category,
        "backbone": METHODS[method]["backbone"],
        "weights": f"pretrained:{METHODS[method]['backbone']}.pth:sha256=abc123",
        "image_auroc": i_auroc,
        "image_ap": i_auroc - 0.01,
        "image_f1max": i_auroc - 0.02,
        "pixel_auroc": 0.95,
        "pixel_ap": 0.4,
        "pixel_f1max": 0.45,
        "aupro": i_auroc - 0.05,
        "fpr_limit": 0.3,
        "n_images": 6,
        "n_anomalous": 3,
        "n_normal": 3,
        "eval_height": 24,
        "eval_width": 24,
    }
    if extra:
        row.update(METHODS[method], kind="patchcore", base="pc", bank="coreset")
        row["seed"] = SEEDS[method]
    return row


def write_summary(path: Path, extra: bool = True) -> pd.DataFrame:
    """metrics.csv in the aggregate step's format (via summarise), optionally with config cols."""
    per_cat = pd.DataFrame([_metric_row(m, c, extra) for m in METHODS for c in CATEGORIES])
    micro = per_cat.groupby(["dataset", "method"], as_index=False).first()
    micro["category"] = "micro"
    micro["image_auroc"] = 0.5
    summary = summarise(per_cat, micro)
    path.parent.mkdir(parents=True, exist_ok=True)
    summary.to_csv(path, index=False, float_format="%.6f")
    return summary


def write_scores(root: Path) -> list[dict]:
    """Images, masks, a manifest and per (method, category) scores + maps; the score items."""
    rng = np.random.default_rng(0)
    records, items = [], []
    for cat in CATEGORIES:
        for i in range(6):
            label = int(i >= 3)
            image = _png(
                root / "data" / cat / f"{i}.png", rng.integers(0, 255, (32, 32, 3), np.uint8)
            )
            mask = None
            if label:
                m = np.zeros((32, 32), np.uint8)
                m[8 + i : 16 + i, 8:16] = 255
                mask = _png(root / "data" / cat / f"{i}_mask.png", m)
            records.append(
                dict(
                    sample_id=f"{cat}/test/{i}",
                    category=cat,
                    split="test",
                    label=label,
                    defect_type="dent" if label else "good",
                    image_path=image,
                    mask_path=mask,
                )
            )
    manifest = pd.DataFrame(records)
    manifest_path = root / "results" / "mvtec" / "manifest.parquet"
    manifest_path.parent.mkdir(parents=True)
    manifest.to_parquet(manifest_path, index=False)
    for method in METHODS:
        for cat in CATEGORIES:
            test = manifest[manifest["category"] == cat].reset_index(drop=True)
            table = test[["sample_id", "category", "label", "defect_type"]].copy()
            table["score"] = test["label"] + rng.normal(0, 0.6, len(test))
            maps = rng.random((len(test), 24, 24)).astype(np.float32)
            for k, path in enumerate(test["mask_path"]):
                if isinstance(path, str):
                    maps[k] += 2 * GEOMETRY.mask(load_mask(path))
            out = root / "results" / "mvtec" / "scores" / method / cat
            out.mkdir(parents=True)
            table.to_parquet(out / "scores.parquet", index=False)
            np.save(out / "maps.npy", maps)
            items.append(
                dict(
                    dataset="mvtec",
                    method=method,
                    category=cat,
                    scores=str(out / "scores.parquet"),
                    maps=str(out / "maps.npy"),
                    manifest=str(manifest_path),
                    resize=GEOMETRY.resize,
                    crop=GEOMETRY.crop,
                )
            )
    return items


def write_cross_domain(path: Path) -> None:
    rows = []
    for train in CATEGORIES:
        for test in CATEGORIES:
            same = train == test
            rows.append(
                dict(
                    dataset="mvtec",
                    method="pc_wrn",
                    train_category=train,
                    test_category=test,
                    in_domain=same,
                    image_auroc=I_AUROC[("pc_wrn", test)] if same else 0.70,
                    pixel_auroc=0.9,
                    aupro=0.8,
                    mmd=0.0 if same else 0.25,
                    wasserstein=0.0 if same else 1.5,
                    cosine=0.0 if same else 0.1,
                )
            )
    pd.DataFrame(rows).to_csv(path, index=False)


def synthetic_results(root: Path) -> dict:
    """The full tree; returns build_report's keyword arguments."""
    summary = root / "results" / "summary" / "metrics.csv"
    write_summary(summary)
    items = write_scores(root)
    cross = root / "results" / "summary" / "cross_domain.csv"
    write_cross_domain(cross)
    return dict(
        summary_csv=summary,
        out_html=root / "results" / "summary" / "report.html",
        png_dir=root / "results" / "summary" / "report_figures",
        score_items=items,
        cross_domain_csv=cross,
        references=REPO / "config" / "references.yaml",
    )


class Tables(HTMLParser):
    """Every <table> as {caption, header, rows} of cell texts (stdlib only)."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: list[dict] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_caption = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"caption": "", "header": [], "rows": []})
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "caption":
            self._in_caption = True

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr":
            table = self.tables[-1]
            (table["rows"] if table["header"] else table["header"]).extend(
                [self._row] if table["header"] else self._row
            )
        elif tag == "caption":
            self._in_caption = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        elif self._in_caption:
            self.tables[-1]["caption"] += data

    def find(self, caption_start: str) -> dict:
        (table,) = [t for t in self.tables if t["caption"].startswith(caption_start)]
        return table

    def records(self, caption_start: str) -> list[dict]:
        table = self.find(caption_start)
        return [dict(zip(table["header"], row)) for row in table["rows"]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, str]:
    """One full build shared by the read-only checks (a build takes seconds)."""
    kwargs = synthetic_results(tmp_path_factory.mktemp("report"))
    result = build_report(**kwargs)
    return kwargs, result, Path(kwargs["out_html"]).read_text()


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def test_report_embeds_every_figure_and_writes_the_pngs(built):
    kwargs, result, html = built
    embedded = re.findall(
        r'<img src="data:image/png;base64,([^"]+)" alt="[^"]*" data-file="([^"]+)"', html
    )
    assert len(embedded) == N_FIGURES == len(result["figures"])
    files = sorted(p.name for p in Path(kwargs["png_dir"]).iterdir())
    assert files == sorted(result["figures"])
    for data, name in embedded:
        png = base64.b64decode(data)
        assert png.startswith(b"\x89PNG") and png == (Path(kwargs["png_dir"]) / name).read_bytes()
    for section in ("Results", "Per category", "Published numbers", "ROC and PR curves",
                    "Anomaly-map overlays", "Backbone comparison", "Layer-fusion ablation",
                    "Cross-domain", "Provenance"):  # fmt: skip
        assert section in result["sections"]
    assert "Not shown" not in result["sections"]


def test_tables_hold_the_summary_numbers(built):
    _, _, html = built
    tables = Tables(html)
    macro = {r["method"]: r for r in tables.records("Macro mean over categories")}
    for method in METHODS:
        expected = np.mean([I_AUROC[(method, c)] for c in CATEGORIES])
        assert macro[method]["I-AUROC"] == _pct(expected)
        assert macro[method]["categories"] == "2"
        assert macro[method]["resolution"] == "24×24"
    assert "AUPRO (FPR≤0.3)" in tables.find("Macro mean over categories")["header"]
    micro = {r["method"]: r for r in tables.records("Micro")}
    assert micro["pc_wrn"]["I-AUROC"] == "50.0"
    per_cat = tables.records("Per category")
    assert len(per_cat) == len(METHODS) * len(CATEGORIES)
    for row in per_cat:
        assert row["I-AUROC"] == _pct(I_AUROC[(row["method"], row["category"])])
        assert row["AUPRO (FPR≤0.3)"] == _pct(I_AUROC[(row["method"], row["category"])] - 0.05)


def test_seed_table_reports_mean_and_std(built):
    _, _, html = built
    (row,) = Tables(html).records("Macro means over seeds")
    per_seed = [np.mean([I_AUROC[(m, c)] for c in CATEGORIES]) for m in ("pc_r18", "pc_r18_s1")]
    mean, std = 100 * np.mean(per_seed), 100 * np.std(per_seed, ddof=1)
    assert row["I-AUROC"] == f"{mean:.1f} ± {std:.1f}"
    assert row["seeds"] == "0, 1" and row["methods"] == "pc_r18, pc_r18_s1"


def test_references_are_set_beside_matching_rows_with_the_subset_caveat(built):
    _, _, html = built
    rows = Tables(html).records("Our macro rows beside published")
    ours = [r for r in rows if r[""] == "ours"]
    assert {r["name"] for r in ours} == {f"mvtec / {m}" for m in METHODS}
    assert all(r["comparability"] == "NOT comparable: mean of 2 of 15 categories" for r in ours)
    published = [r for r in rows if r[""] == "published"]
    ten = [r for r in published if "PatchCore-10%" in r["name"]]
    assert [r["comparability"] for r in ten] == ["same backbone as pc_wrn"]
    assert ten[0]["I-AUROC"] == "99.0" and ten[0]["AUPRO / PRO"] == "93.5"
    # Entries of other kinds (PaDiM, the CLIP methods) match no row of ours: listed as context.
    context = Tables(html).records("Other published numbers")
    assert any("PaDiM" in r["name"] for r in context)
    assert not any("PatchCore" in r["name"] for r in context)  # those matched our rows
    assert "NOT comparable" in html and "V-sec" in html


def test_cross_domain_and_provenance_tables(built):
    _, _, html = built
    tables = Tables(html)
    drops = tables.records("Cross pairs")
    assert len(drops) == 2
    by_test = {r["test_category"]: r for r in drops}
    assert by_test["beta"]["drop (points)"] == f"{100 * (0.9544 - 0.70):.1f}"
    assert by_test["alpha"]["sliced W1"] == "1.5"
    prov = {r["method"]: r for r in tables.records("Provenance")}
    assert prov["pc_wrn"]["weights"] == "pretrained:wrn50.pth:sha256=abc123"
    assert prov["pc_wrn"]["feature_dim"] == "1536" and prov["pc_r18_s1"]["seed"] == "1"


def test_missing_optional_inputs_degrade_gracefully(tmp_path):
    summary = tmp_path / "metrics.csv"
    frame = write_summary(summary, extra=False).drop(columns=["fpr_limit"])
    frame.to_csv(summary, index=False)
    result = build_report(summary, tmp_path / "report.html", tmp_path / "figs")
    html = (tmp_path / "report.html").read_text()
    assert result["figures"] == ["bars-mvtec.png"]
    assert html.count("data:image/png;base64,") == 1
    (skipped,) = re.findall(r'<section id="not-shown">(.*?)</section>', html, re.S)
    for reason in ("no references file", "no score files", "no cross_domain.csv",
                   "Backbone comparison", "Layer-fusion ablation"):  # fmt: skip
        assert reason in skipped
    tables = Tables(html)
    assert "AUPRO (FPR limit unknown)" in tables.find("Macro mean over categories")["header"]
    assert "Provenance" in result["sections"]  # backbone and weights are still recorded


def test_failure_leaves_no_partial_report(tmp_path):
    kwargs = synthetic_results(tmp_path)
    kwargs.update(score_items=kwargs["score_items"][:1], cross_domain_csv=None)
    build_report(**kwargs)
    html_before = Path(kwargs["out_html"]).read_bytes()
    figures_before = sorted(p.name for p in Path(kwargs["png_dir"]).iterdir())
    # The top-scoring image disappears: its overlay fails after other figures were made.
    table = pd.read_parquet(kwargs["score_items"][0]["scores"])
    top = table["sample_id"][table["score"].idxmax()]
    manifest = pd.read_parquet(kwargs["score_items"][0]["manifest"]).set_index("sample_id")
    Path(manifest.loc[top, "image_path"]).unlink()
    with pytest.raises(DataError, match="does not exist"):
        build_report(**kwargs)
    assert Path(kwargs["out_html"]).read_bytes() == html_before
    assert sorted(p.name for p in Path(kwargs["png_dir"]).iterdir()) == figures_before
    summary_dir = Path(kwargs["out_html"]).parent
    assert [p.name for p in summary_dir.iterdir() if p.name.startswith(".")] == []
    fresh = tmp_path / "fresh"
    with pytest.raises(DataError, match="does not exist"):
        build_report(**{**kwargs, "out_html": fresh / "r.html", "png_dir": fresh / "figs"})
    assert not (fresh / "r.html").exists() and not (fresh / "figs").exists()


def test_bad_inputs_name_the_problem(tmp_path):
    bad = tmp_path / "metrics.csv"
    pd.DataFrame({"dataset": ["d"], "method": ["m"]}).to_csv(bad, index=False)
    with pytest.raises(CacheError, match="lacks columns"):
        build_report(bad, tmp_path / "r.html", tmp_path / "f")
    kwargs = synthetic_results(tmp_path / "tree")
    item = dict(kwargs["score_items"][0])
    del item["maps"]
    with pytest.raises(ValueError, match="lacks keys"):
        build_report(**{**kwargs, "score_items": [item]})
    assert not Path(kwargs["out_html"]).exists()


def test_extremes_picks_top_and_bottom_without_repeats():
    assert extremes(np.array([0.1, 0.9, 0.5, 0.3, 0.7]), 2) == ([1, 4], [3, 0])
    assert extremes(np.array([0.2, 0.8, 0.5]), 2) == ([1, 2], [0])


def test_seed_groups_need_distinct_seeds(tmp_path):
    frame = write_summary(tmp_path / "m.csv")
    assert [list(g["method"]) for g in seed_groups(frame)] == [["pc_r18", "pc_r18_s1"]]
    # Same seed twice: the rows differ by something unrecorded, so no seed group.
    frame.loc[frame["method"] == "pc_r18_s1", "seed"] = 0
    assert seed_groups(frame) == []


def test_with_drops_uses_the_in_domain_auroc_of_the_test_category():
    frame = pd.DataFrame(
        {
            "dataset": ["d"] * 3,
            "method": ["m"] * 3,
            "train_category": ["a", "b", "a"],
            "test_category": ["a", "b", "b"],
            "in_domain": [True, True, False],
            "image_auroc": [0.9, 0.8, 0.6],
        }
    )
    (drop,) = with_drops(frame)["drop"]
    assert drop == pytest.approx(20.0)


def test_references_file_is_sourced_and_tagged():
    refs = load_references(REPO / "config" / "references.yaml")
    assert refs.dataset_key("mvtec_ad") == refs.dataset_key("MVTec") == "mvtec_ad"
    assert refs.dataset_key("demo") is None
    for ref in refs.entries:
        assert ref.source and ref.verification in {"V-code", "V-sec"}
        assert all(0 < v <= 100 for v in ref.metrics.values())
    by_name = {r.name: r.metrics for r in refs.entries}
    assert by_name["PatchCore-10%"] == {"image_auroc": 99.0, "pixel_auroc": 98.1, "aupro": 93.5}
    assert by_name["PaDiM WRN50-Rd550"] == {"image_auroc": 95.3, "pixel_auroc": 97.5, "aupro": 92.1}
    raw = yaml.safe_load((REPO / "config" / "references.yaml").read_text())
    assert len(raw["references"]) == len(refs.entries)


@pytest.mark.parametrize(
    "source", ["METHODS.md §1.1", "/work/shared/notes", "see ../shared/DESIGN.md", "~/refs.pdf"]
)
def test_a_reference_citing_a_local_file_is_refused(tmp_path, source):
    raw = yaml.safe_load((REPO / "config" / "references.yaml").read_text())
    raw["references"] = [{**raw["references"][0], "source": source}]
    path = tmp_path / "refs.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="names a local file"):
        load_references(path)
    raw["references"][0]["source"] = "openvinotoolkit/anomalib @161bb36, models/image/padim"
    path.write_text(yaml.safe_dump(raw))
    assert len(load_references(path).entries) == 1


def test_a_per_dataset_model_loss_log_is_a_training_curve(tmp_path, monkeypatch):
    """The workflow hands the report each per-dataset (multi-class) model folder (Dinomaly in
    config/examples/dino.yaml: an edge train_dataset -> report in the DAG), and the loss figure
    draws its ``loss_log.csv`` under "method (dataset)"."""
    import subprocess
    import sys

    from iadbench.report import training

    dot = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
         str(tmp_path), "--configfile", str(REPO / "config/examples/dino.yaml"),
         "--dag", "dot", "report"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    nodes = dict(re.findall(r'(\d+)\[label = "([^"\\]+)', dot))
    edges = {(nodes[a], nodes[b]) for a, b in re.findall(r"(\d+) -> (\d+)", dot)}
    assert ("train_dataset", "report") in edges

    model = tmp_path / "results" / "demo" / "multiclass" / "dinomaly"
    model.mkdir(parents=True)
    pd.DataFrame(
        {"epoch": [1, 2, 3], "train_loss": [0.9, 0.5, 0.4], "loss_global": [0.8, 0.4, 0.3]}
    ).to_csv(model / "loss_log.csv", index=False)
    drawn = {}
    real = training.loss_figure

    def spy(logs):
        fig = real(logs)
        for ax in fig.axes:  # read now: the report closes the figure once saved
            drawn[ax.get_title()] = [(ln.get_label(), list(ln.get_ydata())) for ln in ax.lines]
        return fig

    monkeypatch.setattr(training, "loss_figure", spy)
    summary = tmp_path / "metrics.csv"
    write_summary(summary, extra=False)
    result = build_report(
        summary, tmp_path / "r.html", tmp_path / "figs", trained_models={"dinomaly (demo)": model}
    )
    assert "training-loss.png" in result["figures"]
    assert drawn["total"] == [("dinomaly (demo)", [0.9, 0.5, 0.4])]
    assert drawn["global"] == [("dinomaly (demo)", [0.8, 0.4, 0.3])]
    (model / "loss_log.csv").unlink()
    with pytest.raises(CacheError, match="trained model 'dinomaly \\(demo\\)' has no loss log"):
        build_report(summary, tmp_path / "r2.html", tmp_path / "f2", trained_models={
            "dinomaly (demo)": model})  # fmt: skip
