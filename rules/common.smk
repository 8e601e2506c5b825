# Helpers shared by the workflow files: config slices, what each method needs, target lists and the
# input functions that decide which files a job reads. Reads no torch (see methods/kinds.py).
import os
import re
from urllib.parse import quote_plus, unquote_plus

import pandas as pd
from snakemake.logging import logger

from iadbench.clip.prompts import class_name
from iadbench.config import cross_domain_pairs, dataset_splits, gpu_decision, method_datasets
from iadbench.data.manifest import SPLITS
from iadbench.backbones.registry import resolve_layers
from iadbench.methods.kinds import params_class, params_of

DATASETS = list(config["datasets"])
BACKBONES = list(config["backbones"])
METHODS = list(config["methods"])
TRAIN_SETS = list(config.get("train_sets") or {})
ENCODERS = list(config.get("encoders") or {})
PARAMS = {name: params_of(entry) for name, entry in config["methods"].items()}
NEEDS = {name: params.needs() for name, params in PARAMS.items()}
# resources: gpu=GPU in every GPU-tagged rule: 1 makes `--resources gpu=1` run them one at a
# time; 0 (no GPU here, or gpu_jobs: never) lets them use every core. See config/schema.yaml.
GPU, _GPU_WHY = gpu_decision(config)
logger.info(f"GPU-tagged jobs request gpu={GPU} ({_GPU_WHY})")


def alternation(names):
    return "|".join(re.escape(n) for n in names) if names else "$^"


def dataset_cfg(wildcards):
    return config["datasets"][wildcards.dataset]


def method_cfg(wildcards):
    return config["methods"][wildcards.method]


def backbone_of(method):
    return config["methods"][method].get("backbone")


def backbone_cfg(wildcards):
    name = backbone_of(wildcards.method) if hasattr(wildcards, "method") else wildcards.backbone
    return config["backbones"][name] if name else None


def geometry(dataset):
    """A dataset's resize/crop/mask threshold: what features, maps and metrics agree on."""
    d = config["datasets"][dataset]
    return {"resize": d["resize"], "crop": d["crop"], "mask_threshold": d["mask_threshold"]}


def geometry_cfg(wildcards):
    return geometry(wildcards.dataset)


def train_set_cfg(wildcards):
    return config["train_sets"][wildcards.train_set]


def demo_entry(root):
    """The ``datasets:`` entry whose generated demo lives at ``root``."""
    return next(d for d in config["datasets"].values() if "demo" in d and d["root"] == root)


def dataset_source(wildcards):
    """What a manifest job reads besides the files on disk: the demo rule's output for
    generated datasets, the source datasets' manifests for a union."""
    d = config["datasets"][wildcards.dataset]
    if d.get("layout") == "union":
        return {f"source_{s}": path(MANIFEST, dataset=s) for s in d["sources"]}
    return {"demo": os.path.join(d["root"], ".complete")} if "demo" in d else {}


def categories_of(dataset):
    """Listed categories, or (``categories: all``) those the manifest checkpoint discovered."""
    listed = config["datasets"][dataset]["categories"]
    if listed != "all":
        return list(listed)
    manifest = checkpoints.manifest.get(dataset=dataset).output[0]
    return sorted(pd.read_parquet(manifest, columns=["category"])["category"].unique())


def train_set_categories(train_set):
    spec = config["train_sets"][train_set]
    if spec["categories"] == "all":
        return categories_of(spec["dataset"])
    return list(spec["categories"])


def feature_files(dataset, method, category, split):
    """The cached features of one (category, split) with the method's backbone."""
    fields = dict(dataset=dataset, backbone=backbone_of(method), category=category, split=split)
    return {
        "npy": path(FEATURES, ext="npy", **fields),
        "index": path(FEATURES, ext="parquet", **fields),
    }


def fit_feature_files(dataset, method, category):
    """Cached features a ``features`` fit reads besides its ``fit_on`` split, by name
    (``features_<split>_npy``/``_index``, ``features_synthetic_npy``/``_index``)."""
    needs, files = NEEDS[method], {}
    for split in needs.fit_features:
        for key, value in feature_files(dataset, method, category, split).items():
            files[f"features_{split}_{key}"] = value
    if needs.synthetic_features is not None:
        recipe, copies, seed = needs.synthetic_features
        fields = dict(dataset=dataset, backbone=backbone_of(method), category=category,
                      recipe=recipe, copies=copies, seed=seed)  # fmt: skip
        files["features_synthetic_npy"] = path(SYNTHETIC_FEATURES, ext="npy", **fields)
        files["features_synthetic_index"] = path(SYNTHETIC_FEATURES, ext="parquet", **fields)
    return files


def encoder_cfg(wildcards):
    entry = config["encoders"][wildcards.encoder]
    if entry["modality"] != wildcards.modality:
        raise ValueError(f"encoder {wildcards.encoder!r} is not a {wildcards.modality} encoder")
    return entry


def encoder_dataset(wildcards):
    """What an embedding depends on in its dataset's entry: the label box, for photos only."""
    if wildcards.modality != "photo":
        return {}
    return {"label_mask": config["datasets"][wildcards.dataset].get("label_mask")}


def encoder_backbones(wildcards):
    """The backbones entry an encoder runs (its rerun trigger), or none."""
    name = config["encoders"][wildcards.encoder].get("backbone")
    return {name: config["backbones"][name]} if name else {}


def embedding_files(method, dataset, category, split):
    """The cached embeddings a multimodal method reads, by role: ``emb_<split>_<role>_npy`` and
    ``..._index`` for one (category, split)."""
    files = {}
    for role, encoder in NEEDS[method].embeddings:
        fields = dict(
            dataset=dataset,
            encoder=encoder,
            modality=config["encoders"][encoder]["modality"],
            category=category,
            split=split,
        )
        files[f"emb_{split}_{role}_npy"] = path(EMBEDDINGS, ext="npy", **fields)
        files[f"emb_{split}_{role}_index"] = path(EMBEDDINGS, ext="parquet", **fields)
    return files


def text_encoder_cfg(wildcards):
    """What text embeddings depend on: the model and its weights, not visual options."""
    entry = config["backbones"][wildcards.backbone]
    return {k: entry.get(k) for k in ("model", "weights", "seed")}


def prompt_set_cfg(wildcards):
    """A built-in prompt set's name, or the sentences of a ``prompt_sets:`` entry."""
    return (config.get("prompt_sets") or {}).get(wildcards.prompts, wildcards.prompts)


def own_view(method):
    """(name, resolved options) of the kind's own visual view (Crane's), or None."""
    model = config["backbones"][backbone_of(method)]["model"]
    return PARAMS[method].visual_view(model, config["backbones"])


def clip_view(method):
    """The visual-output view a CLIP method reads: its kind's own, or token path plus blocks."""
    needs = NEEDS[method]
    model = config["backbones"][backbone_of(method)]["model"]
    if own := own_view(method):
        return own[0]
    if not needs.blocks:
        return "cls"  # the CLS embedding alone: the same on every token path
    blocks = resolve_layers(model, list(needs.blocks))
    return "-".join([needs.token_path, *(f"b{b}" for b in blocks)])


def view_options(wildcards):
    """The options of a kind's own view as a clip_visual job computes it (None: a plain view)."""
    for method in METHODS:
        if backbone_of(method) == wildcards.backbone and "visual" in NEEDS[method].inputs:
            own = own_view(method)
            if own and own[0] == wildcards.view:
                return own[1]
    if not re.fullmatch(r"[a-z_]+(-b[0-9]+)*", wildcards.view):
        raise ValueError(
            f"no method of backbone {wildcards.backbone!r} reads view {wildcards.view!r}"
        )
    return None


def method_view_options(wildcards):
    """The options of the view a score job's method reads, when its kind has its own."""
    own = own_view(wildcards.method) if "visual" in NEEDS[wildcards.method].inputs else None
    return own[1] if own else None


def class_name_of(method, dataset, category):
    """The class name a CLIP method's prompts are filled with on one category."""
    literal = config["methods"][method].get("class_name") == "object"
    return class_name(category, config["datasets"][dataset].get("class_names"), literal)


def clip_files(method, dataset, category, split):
    """The cached CLIP outputs a method's needs name, for one (category, split)."""
    needs, files = NEEDS[method], {}
    fields = dict(dataset=dataset, backbone=backbone_of(method), category=category, split=split)
    if "visual" in needs.inputs:
        files["visual"] = path(CLIP_VISUAL, view=clip_view(method), **fields)
    if "windows" in needs.inputs:
        sizes = "-".join(str(w) for w in sorted(needs.windows))
        files["windows"] = path(CLIP_WINDOWS, sizes=sizes, **fields)
    if "text" in needs.inputs:
        text = dict(
            backbone=backbone_of(method),
            prompts=needs.prompts,
            class_slug=quote_plus(class_name_of(method, dataset, category)),
        )
        files["text"] = path(TEXT, **text)
        if needs.noisy_text is not None:
            samples, sigma, seed = needs.noisy_text
            # repr() round-trips a float exactly: the job reads back the same sigma.
            draw = dict(sigma=repr(float(sigma)), samples=samples, seed=seed)
            files["noisy_text"] = path(BAYES_TEXT, **text, **draw)
    return files


def frozen_files(method, dataset, category, split):
    """The cached frozen stream a trained CLIP method starts from ({}: it reads images)."""
    cache_view = getattr(PARAMS[method], "cache_view", None)  # the trained CLIP kinds'
    view = cache_view(config["backbones"][backbone_of(method)]["model"]) if cache_view else None
    if view is None:
        return {}
    fields = dict(dataset=dataset, backbone=backbone_of(method), category=category, split=split)
    return {
        "frozen": path(CLIP_FROZEN_META, view=view, **fields),
        "frozen_tokens": path(CLIP_FROZEN, view=view, **fields),
    }


def model_for(wildcards):
    """The one place that says which state a score job reads, from the method's needs.

    Zero-shot: none. Per-category fit: the category's own fit, or ``train_category``'s in the
    cross-category study. Trained on a train set: the method's ``train_on`` model.
    """
    training = NEEDS[wildcards.method].training
    if training == "per_category":
        category = getattr(wildcards, "train_category", wildcards.category)
        return {
            "state": path(
                FIT_STATE, dataset=wildcards.dataset, method=wildcards.method, category=category
            )
        }
    if training == "train_set":
        train_set = config["methods"][wildcards.method]["train_on"]
        return {"state": path(TRAINED, method=wildcards.method, train_set=train_set)}
    if training == "per_dataset":
        return {"state": path(DATASET_MODEL, dataset=wildcards.dataset, method=wildcards.method)}
    return {}


def score_inputs(wildcards):
    """What a score job reads: the manifest, its model, and what the kind's needs name."""
    needs = NEEDS[wildcards.method]
    inputs = {"manifest": path(MANIFEST, dataset=wildcards.dataset), **model_for(wildcards)}
    if "features" in needs.inputs:
        inputs.update(
            feature_files(wildcards.dataset, wildcards.method, wildcards.category, wildcards.split)
        )
    inputs.update(
        clip_files(wildcards.method, wildcards.dataset, wildcards.category, wildcards.split)
    )
    inputs.update(
        uses_files(wildcards.method, wildcards.dataset, wildcards.category, wildcards.split)
    )
    inputs.update(
        embedding_files(wildcards.method, wildcards.dataset, wildcards.category, wildcards.split)
    )
    return inputs


def operating_inputs(wildcards):
    """The method's own ``val`` scores, where its operating threshold is chosen (test only)."""
    splits = dataset_splits(config["datasets"][wildcards.dataset])
    if wildcards.split != "test" or "val" not in splits:
        return {}
    fields = dict(dataset=wildcards.dataset, method=wildcards.method, split="val")
    if hasattr(wildcards, "train_category"):
        template, fields["train_category"] = CROSS_SCORES, wildcards.train_category
    else:
        template = SCORES
    return {
        "val_scores": path(template, category=wildcards.category, file="scores.parquet", **fields)
    }


def uses_files(method, dataset, category, split):
    """The score tables of the methods ``method`` uses, by role (``uses_<role>``)."""
    return {
        f"uses_{role}": score_file(other, dataset, category, "scores.parquet", split)
        for role, other in (config["methods"][method].get("uses") or {}).items()
    }


def fit_inputs(wildcards):
    """A per-category fit reads the category's ``fit_on`` split (``train``, or ``val``)."""
    needs = NEEDS[wildcards.method]
    inputs = {"manifest": path(MANIFEST, dataset=wildcards.dataset)}
    if "features" in needs.inputs:
        inputs.update(
            feature_files(wildcards.dataset, wildcards.method, wildcards.category, needs.fit_on)
        )
    inputs.update(uses_files(wildcards.method, wildcards.dataset, wildcards.category, needs.fit_on))
    inputs.update(fit_feature_files(wildcards.dataset, wildcards.method, wildcards.category))
    if needs.embeddings:  # the fit split, and val for kinds that select on it (never test)
        for split in [needs.fit_on, *sorted(PARAMS[wildcards.method].splits_read())]:
            inputs.update(
                embedding_files(wildcards.method, wildcards.dataset, wildcards.category, split)
            )
    return inputs


def train_inputs(wildcards):
    """A train-set training reads every category of its train set (features, or the text
    embeddings of each category's class name, when the kind needs them, and the cached
    frozen stream a trained CLIP head starts from)."""
    spec = config["train_sets"][wildcards.train_set]
    inputs = {"manifest": path(MANIFEST, dataset=spec["dataset"])}
    if "features" in NEEDS[wildcards.method].inputs:
        files = [
            feature_files(spec["dataset"], wildcards.method, c, spec["split"])
            for c in train_set_categories(wildcards.train_set)
        ]
        inputs["npy"] = [f["npy"] for f in files]
        inputs["index"] = [f["index"] for f in files]
    if "text" in NEEDS[wildcards.method].inputs:
        inputs["text"] = [
            clip_files(wildcards.method, spec["dataset"], c, spec["split"])["text"]
            for c in train_set_categories(wildcards.train_set)
        ]
    frozen = [
        frozen_files(wildcards.method, spec["dataset"], c, spec["split"])
        for c in train_set_categories(wildcards.train_set)
    ]
    for key in ("frozen", "frozen_tokens") if all(frozen) else ():
        inputs[key] = [f[key] for f in frozen]
    return inputs


def dataset_train_params(wildcards):
    """A per-dataset (multi-class) training's train set: the train split of every category."""
    return {
        "dataset": wildcards.dataset,
        "categories": categories_of(wildcards.dataset),
        "split": "train",
        "geometry": geometry(wildcards.dataset),
    }


def train_params(wildcards):
    """The train set's spec and its dataset's geometry, as one rerun-triggering params value."""
    spec = config["train_sets"][wildcards.train_set]
    return {
        **spec,
        "categories": train_set_categories(wildcards.train_set),
        "geometry": geometry(spec["dataset"]),
    }


def trained_models():
    """method -> its trained model folder, for every method trained on a train set."""
    return {
        m: path(TRAINED, method=m, train_set=config["methods"][m]["train_on"])
        for m in METHODS
        if NEEDS[m].training == "train_set"
    }


def loss_curve_models():
    """label -> model folder of every model the training loop wrote a loss log for: each method
    trained on a train set (label: the method) and each per-dataset (multi-class) model (label:
    "method (dataset)")."""
    per_dataset = {
        f"{m} ({d})": path(DATASET_MODEL, dataset=d, method=m)
        for m in METHODS
        if NEEDS[m].training == "per_dataset"
        for d in method_datasets(config, m)
    }
    return {**trained_models(), **per_dataset}


def cross_dataset_outputs():
    """The summary's train set x target dataset table, when a method is trained on a train set."""
    if not trained_models():
        return {}
    table = report(
        CROSS_DATASET_CSV,
        caption="../workflow/report/cross_dataset.rst",
        category="Summary",
        subcategory="Tables",
        labels={"table": "cross_dataset.csv"},
    )
    return {"cross_csv": table, "cross_md": CROSS_DATASET_MD}


def result_cells():
    """(method, dataset, category) for every result the config asks for."""
    return [
        (m, d, c) for m in METHODS for d in method_datasets(config, m) for c in categories_of(d)
    ]


def score_file(method, dataset, category, file, split="test"):
    return path(SCORES, dataset=dataset, method=method, category=category, split=split, file=file)


def metrics_file(method, dataset, category, split="test"):
    return path(METRICS, dataset=dataset, method=method, category=category, split=split)


def metric_targets(wildcards):
    """Reported metrics: the test split of every result cell."""
    return [metrics_file(m, d, c) for m, d, c in result_cells()]


def score_targets(file):
    def inner(wildcards):
        return [score_file(m, d, c, file) for m, d, c in result_cells()]

    return inner


def micro_targets(wildcards):
    """The pooled (micro) rows of every (dataset, method) with reported results."""
    pairs = dict.fromkeys((d, m) for m, d, _ in result_cells())
    return [path(MICRO, dataset=d, method=m) for d, m in pairs]


def micro_inputs(wildcards):
    """One method's test metrics, scores and maps on every category of one dataset, in order."""
    cells = [
        (m, d, c) for m, d, c in result_cells() if (m, d) == (wildcards.method, wildcards.dataset)
    ]
    return {
        "metrics": [metrics_file(m, d, c) for m, d, c in cells],
        "scores": [score_file(m, d, c, "scores.parquet") for m, d, c in cells],
        "maps": [score_file(m, d, c, "maps.npy") for m, d, c in cells],
    }


def grid_cell(wildcards):
    """The grid entry of one method (empty when it is not from a grid)."""
    return {wildcards.method: GRID[wildcards.method]} if wildcards.method in GRID else {}


def val_targets():
    """Metrics on ``val`` for datasets that have one: thresholds, calibration, selection."""

    def inner(wildcards):
        return [
            metrics_file(m, d, c, split)
            for m, d, c in result_cells()
            for split in dataset_splits(config["datasets"][d])
            if split != "test"
        ]

    return inner


def manifest_files():
    return [path(MANIFEST, dataset=d) for d in DATASETS]


def timed(method):
    """Whether the latency step times this method (its kind implements it)."""
    return params_class(config["methods"][method]["kind"]).timed


def is_cascade(method):
    """A method that routes between two others (``uses`` gate and heatmap)."""
    return set(NEEDS[method].uses) == {"gate", "heatmap"}


def latency_items(wildcards):
    """One item per timed result cell, and per cascade whose gate and heatmap are timed."""
    items = []
    for m, d, c in result_cells():
        item = {"dataset": d, "method": m, "category": c, "kind": config["methods"][m]["kind"]}
        if timed(m):
            items.append({**item, "timings": path(LATENCY, dataset=d, method=m, category=c)})
        elif is_cascade(m):
            uses = config["methods"][m]["uses"]
            if timed(uses["gate"]) and timed(uses["heatmap"]):
                roles = {r: path(LATENCY, dataset=d, method=uses[r], category=c) for r in uses}
                items.append({**item, **roles, "scores": score_file(m, d, c, "scores.parquet"),
                              "shared_backbone": shares_backbone(uses["gate"], uses["heatmap"])})  # fmt: skip
    return items


def shares_backbone(gate, heatmap):
    """Whether a gate reads the heatmap method's cached features (one backbone pass for both)."""
    both = all("features" in NEEDS[m].inputs for m in (gate, heatmap))
    return both and backbone_of(gate) == backbone_of(heatmap)


def latency_inputs(wildcards):
    return sorted({v for item in latency_items(wildcards) for k, v in item.items()
                   if k in ("timings", "gate", "heatmap", "scores")})  # fmt: skip


def latency_outputs():
    return [LATENCY_CSV] if config.get("latency") else []


def sweep_states(wildcards):
    """The fitted cascades (their ``sweep.csv``), one per result cell."""
    return [
        path(FIT_STATE, dataset=d, method=m, category=c)
        for m, d, c in result_cells()
        if is_cascade(m)
    ]


def sweep_outputs():
    return [SWEEP_CSV] if any(is_cascade(m) for m in METHODS) else []


def variance_cells():
    """Result cells whose score tables carry per-image std over prompt samples (test split)."""
    return [(m, d, c) for m, d, c in result_cells() if NEEDS[m].uncertainty]


def variance_outputs():
    """The variance analysis' CSV and histogram per such cell (rule all requests them)."""

    def inner(wildcards):
        return [
            path(template, dataset=d, method=m, category=c)
            for m, d, c in variance_cells()
            for template in (VARIANCE_CSV, VARIANCE_PNG)
        ]

    return inner


def variance_title(wildcards):
    params = PARAMS[wildcards.method]
    return (
        f"{wildcards.dataset} / {wildcards.method} / {wildcards.category}: "
        f"R = {params.bayes['samples']}, sigma = {params.bayes_sigma:g}"
    )


def cross_cells():
    return cross_domain_pairs(config, categories_of)


def cross_domain_outputs():
    return [CROSS_SUMMARY] if config.get("cross_domain") else []


def report_items(wildcards):
    """What the report reads for each result: score table, maps, manifest and geometry."""
    return [
        {
            "dataset": d,
            "method": m,
            "category": c,
            "scores": score_file(m, d, c, "scores.parquet"),
            "maps": score_file(m, d, c, "maps.npy"),
            "manifest": path(MANIFEST, dataset=d),
            **geometry(d),
        }
        for m, d, c in result_cells()
    ]


def cross_metric(cell):
    """In-domain cells reuse the category's own metrics; the others have their own target."""
    fields = dict(dataset=cell["dataset"], method=cell["method"], split="test")
    if cell["train"] == cell["test"]:
        return path(METRICS, category=cell["test"], **fields)
    return path(CROSS_METRICS, train_category=cell["train"], category=cell["test"], **fields)


def cross_distance(cell):
    """Distances are symmetric: one file per unordered category pair."""
    a, b = sorted((cell["train"], cell["test"]))
    return path(
        DOMAIN,
        dataset=cell["dataset"],
        backbone=backbone_of(cell["method"]),
        train_category=a,
        category=b,
    )
