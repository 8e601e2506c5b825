# Helpers shared by the rule files: config slices, target lists, wildcard constraints.
import os
import re

import pandas as pd

from iadbench.config import cross_domain_pairs, method_datasets

DATASETS = list(config["datasets"])
BACKBONES = list(config["backbones"])
METHODS = list(config["methods"])
SPLITS = ["train", "test"]


def _alternation(names):
    return "|".join(re.escape(n) for n in names) if names else "$^"


def dataset_cfg(wildcards):
    return config["datasets"][wildcards.dataset]


def method_cfg(wildcards):
    return config["methods"][wildcards.method]


def backbone_of(wildcards):
    return config["methods"][wildcards.method]["backbone"]


def backbone_cfg(wildcards):
    return config["backbones"][backbone_of(wildcards)]


def geometry_of(dataset):
    d = config["datasets"][dataset]
    return {"resize": d["resize"], "crop": d["crop"], "mask_threshold": d["mask_threshold"]}


def geometry_cfg(wildcards):
    return geometry_of(wildcards.dataset)


def demo_entry(root):
    """The ``datasets:`` entry whose generated demo lives at ``root``."""
    return next(d for d in config["datasets"].values() if d["root"] == root and "demo" in d)


def dataset_source(wildcards):
    """The demo rule's output for generated datasets; nothing for datasets on disk."""
    d = config["datasets"][wildcards.dataset]
    return [os.path.join(d["root"], ".complete")] if "demo" in d else []


def categories_of(dataset):
    """Listed categories, or (``categories: all``) those the manifest checkpoint discovered."""
    listed = config["datasets"][dataset]["categories"]
    if listed != "all":
        return list(listed)
    manifest = checkpoints.manifest.get(dataset=dataset).output[0]
    return sorted(pd.read_parquet(manifest, columns=["category"])["category"].unique())


def feature_file(kind, split, category="category"):
    def inner(wildcards):
        return "results/{dataset}/features/{backbone}/{category}/{split}.{kind}".format(
            dataset=wildcards.dataset,
            backbone=backbone_of(wildcards),
            category=getattr(wildcards, category),
            split=split,
            kind=kind,
        )

    return inner


def result_cells():
    """(method, dataset, category) for every result the config asks for."""
    return [
        (m, d, c)
        for m in METHODS
        for d in method_datasets(config, m)
        for c in categories_of(d)
    ]


def metric_targets(wildcards):
    return [f"results/{d}/metrics/{m}/{c}.json" for m, d, c in result_cells()]


def score_targets(kind):
    def inner(wildcards):
        return [f"results/{d}/scores/{m}/{c}/{kind}" for m, d, c in result_cells()]

    return inner


def cross_cells():
    return cross_domain_pairs(config, categories_of)


def cross_domain_outputs():
    return ["results/summary/cross_domain.csv"] if config.get("cross_domain") else []


def report_items(wildcards):
    """What the report reads for each result: score table, maps, manifest and geometry."""
    return [
        {
            "dataset": d,
            "method": m,
            "category": c,
            "scores": f"results/{d}/scores/{m}/{c}/scores.parquet",
            "maps": f"results/{d}/scores/{m}/{c}/maps.npy",
            "manifest": f"results/{d}/manifest.parquet",
            **geometry_of(d),
        }
        for m, d, c in result_cells()
    ]


def cross_metric(cell):
    """In-domain cells reuse the category's own metrics; the others have their own target."""
    if cell["train"] == cell["test"]:
        return f"results/{cell['dataset']}/metrics/{cell['method']}/{cell['test']}.json"
    return (
        f"results/{cell['dataset']}/cross/{cell['method']}/{cell['train']}/{cell['test']}.json"
    )


def cross_distance(cell):
    """Distances are symmetric: one file per unordered category pair."""
    backbone = config["methods"][cell["method"]]["backbone"]
    a, b = sorted((cell["train"], cell["test"]))
    return f"results/{cell['dataset']}/domain/{backbone}/{a}/{b}.json"
