# Helpers shared by the rule files: config slices, target lists, wildcard constraints.
import os
import re

from iadbench.config import check_references, method_datasets

check_references(config)

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


def geometry_of(dataset):
    d = config["datasets"][dataset]
    return {"resize": d["resize"], "crop": d["crop"]}


def geometry_cfg(wildcards):
    return geometry_of(wildcards.dataset)


def demo_entry(root):
    """The ``datasets:`` entry whose generated demo lives at ``root``."""
    return next(d for d in config["datasets"].values() if d["root"] == root and "demo" in d)


def dataset_source(wildcards):
    """The demo rule's output for generated datasets; nothing for datasets on disk."""
    d = config["datasets"][wildcards.dataset]
    return [os.path.join(d["root"], ".complete")] if "demo" in d else []


def feature_file(kind, split):
    def inner(wildcards):
        return "results/{dataset}/features/{backbone}/{category}/{split}.{kind}".format(
            dataset=wildcards.dataset,
            backbone=backbone_of(wildcards),
            category=wildcards.category,
            split=split,
            kind=kind,
        )

    return inner


def metric_targets():
    return [
        f"results/{d}/metrics/{m}/{c}.json"
        for m in METHODS
        for d in method_datasets(config, m)
        for c in config["datasets"][d]["categories"]
    ]


def score_targets(kind):
    return [
        f"results/{d}/scores/{m}/{c}/{kind}"
        for m in METHODS
        for d in method_datasets(config, m)
        for c in config["datasets"][d]["categories"]
    ]
