"""Config checks the JSON schema cannot express, and the expansion of experiment grids.

A method entry may carry ``grid: {<key>: [values...]}`` and/or a list of seeds
(``seed: [0, 1, 2]``). :func:`expand_methods` turns it into one concrete entry per combination,
named ``<base>+<key>=<label>+...``, so every grid cell is its own cached target and changing one
cell's values reruns only that cell. The grid axes of each concrete entry are returned beside the
config (not inside it) so the schema can validate the expanded entries unchanged.
"""

from __future__ import annotations

import copy
import functools
import itertools
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import jsonschema
import yaml

from iadbench.backbones.registry import REGISTRY, resolve_layers
from iadbench.errors import ConfigError
from iadbench.methods.kinds import IMPORT_STRING, KINDS, needs_of, params_class, params_of
from iadbench.methods.params import ENCODED, allowed
from iadbench.startup import add_registry_backbones

GRID_SEPARATOR = "+"


@functools.lru_cache(maxsize=4)
def _load_schema(path: str) -> dict:
    """The parsed schema (libyaml when present: the pure-Python loader took ~50 ms a read, and
    every Snakefile parse used to read it four times) with the kinds' parts added
    (:func:`with_kinds`). Shared: never modify it."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return with_kinds(yaml.load(Path(path).read_text(), Loader=loader))


def with_kinds(schema: dict) -> dict:
    """``schema`` (in place) with the method kinds' parts, generated from their parameter
    declarations (:meth:`iadbench.methods.params.Params.json_schema`): ``kind`` is a registered
    name or a plugin's ``"module:Class"``, and each registered kind gets an ``if kind == X then
    {its keys and parameters}`` branch, whose defaults fill in like every other default."""
    method = schema["properties"]["methods"]["additionalProperties"]
    method["properties"]["kind"]["anyOf"] = [{"enum": list(KINDS)}, {"pattern": IMPORT_STRING}]
    method["allOf"] = [
        {"if": {"properties": {"kind": {"const": name}}}, "then": params_class(name).json_schema()}
        for name in KINDS
    ]
    return schema


def _fill_defaults(validator_class):
    """``validator_class`` whose ``properties`` keyword first sets each missing property that
    has a ``default`` (a copy of it), then validates as usual: defaults fill in as validation
    descends, so those inside ``additionalProperties`` and ``then`` branches apply too."""
    check_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if validator.is_type(instance, "object"):
            for name, subschema in props.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from check_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


_DefaultFillingValidator = _fill_defaults(jsonschema.Draft202012Validator)


def validate_schema(config: dict, schema_path: str | Path, sources: list[str]) -> None:
    """Check ``config`` against the JSON schema and fill in its defaults (in place).

    The error names the config file(s) and the offending key path in one line, instead of
    the schema dump a bare validator prints.
    """
    schema = _load_schema(str(Path(schema_path).resolve()))
    for validator in (jsonschema.Draft202012Validator, _DefaultFillingValidator):
        # The first pass reports errors in the config as written; the second fills defaults.
        error = jsonschema.exceptions.best_match(list(validator(schema).iter_errors(config)))
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
            message = error.message
            if error.validator in ("oneOf", "anyOf"):  # "not valid under any of the ..."
                message += f" (allowed: {allowed(error.schema)})"
            raise ConfigError(f"{', '.join(map(str, sources))}: {where}: {message}")


def prepare_config(config: dict, schema_path: str | Path, sources: list[str]) -> tuple[dict, dict]:
    """Validate, fill defaults, expand grids, re-validate every cell, check cross-references.

    Returns the concrete config and the grid description from :func:`expand_methods`.
    A registry model name used as a backbone without a ``backbones:`` entry gets one first
    (:func:`iadbench.startup.add_registry_backbones`).
    """
    add_registry_backbones(config)
    validate_schema(config, schema_path, sources)
    config = {**config}
    try:
        config["methods"], grid = expand_methods(config["methods"])
        check_references(config)
        config["methods"] = {name: complete(entry) for name, entry in config["methods"].items()}
    except ConfigError as exc:
        raise ConfigError(f"{', '.join(map(str, sources))}: {exc}") from None
    validate_schema(config, schema_path, sources)
    return config, grid


def complete(entry: dict) -> dict:
    """A method entry with every parameter of its kind filled in from the kind's dataclass.

    Rules pass entries to jobs as ``params:``; a complete entry makes Snakemake's params
    trigger see a changed default exactly like a changed value.
    """
    return {**entry, **params_of(entry).to_dict()}


def nvidia_present() -> bool:
    """Whether this machine shows an NVIDIA GPU, without importing torch or starting CUDA.

    True when ``/dev/nvidia0`` or ``/proc/driver/nvidia`` exists (the driver is loaded and a
    device node is there) or ``nvidia-smi`` is on ``PATH``. Only looks at the file system: it
    costs microseconds, so the Snakefile can call it on every parse.
    """
    return (
        os.path.exists("/dev/nvidia0")
        or os.path.exists("/proc/driver/nvidia")
        or shutil.which("nvidia-smi") is not None
    )


def gpu_decision(config: dict, probe: Callable[[], bool] = nvidia_present) -> tuple[int, str]:
    """The ``gpu`` resource GPU-tagged rules request (0 or 1), and why, from ``gpu_jobs``.

    ``always``: 1. ``never``: 0. ``auto`` (the default): 1 for ``device: cuda``/``cuda:N``,
    0 for ``device: cpu``, and for ``device: auto`` 1 only when ``probe()`` (by default
    :func:`nvidia_present`) finds an NVIDIA device. With 0, ``--resources gpu=1`` no longer
    makes those jobs wait for each other, so a CPU-only machine uses all its cores.
    """
    mode = config.get("gpu_jobs", "auto")
    device = str(config.get("device", "auto"))
    if mode == "always":
        return 1, "gpu_jobs: always"
    if mode == "never":
        return 0, "gpu_jobs: never"
    if mode != "auto":
        raise ConfigError(f"gpu_jobs: {mode!r} is not one of auto, always, never")
    if device == "cpu":
        return 0, "gpu_jobs: auto, device: cpu"
    if device.startswith("cuda"):
        return 1, f"gpu_jobs: auto, device: {device}"
    if probe():
        return 1, "gpu_jobs: auto, an NVIDIA device is present"
    return 0, "gpu_jobs: auto, no NVIDIA device (/dev/nvidia0, /proc/driver/nvidia, nvidia-smi)"


def gpu_request(config: dict, probe: Callable[[], bool] = nvidia_present) -> int:
    """``resources: gpu=`` of the GPU-tagged rules; see :func:`gpu_decision`."""
    return gpu_decision(config, probe)[0]


def method_datasets(config: dict, method: str) -> list[str]:
    """Datasets a method entry runs on: its ``datasets:`` list, else every dataset."""
    return list(config["methods"][method].get("datasets") or config["datasets"])


def _label(value) -> str:
    """Short, path-safe name of a grid value (a mapping is named by its ``mode``/``name``)."""
    if isinstance(value, dict):
        value = value.get("mode", value.get("name"))
        if value is None:
            raise ConfigError("a mapping in a grid needs a 'mode' or 'name' key to label it")
    text = str(value)
    if "/" in text or not text:
        raise ConfigError(f"grid value {value!r} cannot be used in a file name")
    return text


def expand_methods(methods: dict) -> tuple[dict, dict]:
    """Concrete method entries plus ``{name: {"base": ..., "axes": {...}}}`` for each of them."""
    expanded: dict[str, dict] = {}
    grid_info: dict[str, dict] = {}
    for base, entry in methods.items():
        entry = dict(entry)
        grid = dict(entry.pop("grid", None) or {})
        if isinstance(entry.get("seed"), list):
            if "seed" in grid:
                raise ConfigError(f"method {base!r}: seeds listed both in seed: and grid:")
            grid["seed"] = entry.pop("seed")
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"method {base!r}: grid {key!r} must be a non-empty list")
            if key in ("kind", "datasets", "grid", "uses"):
                raise ConfigError(f"method {base!r}: {key!r} cannot be a grid axis")
        keys = list(grid)
        for combo in itertools.product(*(grid[k] for k in keys)):
            labels = [f"{k}={_label(v)}" for k, v in zip(keys, combo)]
            name = GRID_SEPARATOR.join([base, *labels])
            if name in expanded:
                raise ConfigError(f"method {base!r}: grid produces the name {name!r} twice")
            expanded[name] = {**entry, **dict(zip(keys, combo))}
            grid_info[name] = {"base": base, "axes": {k: _label(v) for k, v in zip(keys, combo)}}
    return expanded, grid_info


def methods_of_entry(config: dict, entry: str) -> list[str]:
    """The concrete methods of one config entry: itself, or all its grid cells."""
    methods = [m for m in config["methods"] if m == entry]
    methods += [m for m in config["methods"] if m.startswith(entry + GRID_SEPARATOR)]
    if not methods:
        raise ConfigError(f"cross_domain: unknown method {entry!r}")
    return methods


def cross_domain_pairs(config: dict, categories_of) -> list[dict]:
    """``cross_domain:`` entries as concrete (method, dataset, train, test) cells, in-domain kept.

    ``categories_of(dataset)`` returns a dataset's category names (it may read the manifest).
    """
    cells = []
    for spec in config.get("cross_domain") or []:
        dataset = spec["dataset"]
        methods = methods_of_entry(config, spec["method"])
        cats = categories_of(dataset)
        pairs = spec.get("pairs", "all")
        if pairs == "all":
            pairs = [[a, b] for a in cats for b in cats]
        for train, test in pairs:
            for name in (train, test):
                if name not in cats:
                    raise ConfigError(
                        f"cross_domain: category {name!r} is not in dataset {dataset!r}"
                    )
            for method in methods:
                cells.append({"method": method, "dataset": dataset, "train": train, "test": test})
    return cells


# Layouts whose files already hold a validation split (the weld manifest's VAL).
OWN_VAL_LAYOUTS = ("weld",)
# Layouts whose samples carry video, audio and sensor files beside photos.
MULTIMODAL_LAYOUTS = ("weld",)
MODALITIES = ("video", "audio", "sensor", "photo")


def has_val(dataset_cfg: dict) -> bool:
    """Whether a dataset has a ``val`` split: its layout's own, or one cut by ``val_split``."""
    return bool(dataset_cfg.get("val_split")) or dataset_cfg.get("layout") in OWN_VAL_LAYOUTS


def dataset_splits(dataset_cfg: dict) -> list[str]:
    """Splits a dataset scores: ``test``, and ``val`` when it has one."""
    return ["test", "val"] if has_val(dataset_cfg) else ["test"]


def _train_set_splits(dataset_cfg: dict) -> set[str]:
    splits = {"train", "test"}
    if has_val(dataset_cfg):
        splits.add("val")
    if dataset_cfg.get("val_split"):
        if float(dataset_cfg["val_split"].get("labelled_fraction", 0)) > 0:
            splits.add("train_labelled")
    return splits


_WELD_KEYS = ("missing_modality", "label_mask")


def _check_weld_keys(name: str, dataset: dict) -> None:
    """Weld-only keys elsewhere, and keys a weld dataset cannot use, are refused."""
    if dataset.get("layout") != "weld":
        if given := [key for key in _WELD_KEYS if key in dataset]:
            raise ConfigError(f"dataset {name!r}: {', '.join(given)} only apply to layout weld")
        return
    if dataset.get("val_split") is not None:
        raise ConfigError(
            f"dataset {name!r}: val_split is refused for layout weld (it has its own VAL split)"
        )
    if dataset["categories"] not in ("all", ["weld"]):
        raise ConfigError(
            f"dataset {name!r}: layout weld has the one category 'weld' (categories: [weld] or "
            f"all), got {dataset['categories']!r}"
        )
    if "image_size" in (dataset.get("demo") or {}):
        raise ConfigError(f"dataset {name!r}: demo.image_size is not a weld demo key")
    box = (dataset.get("label_mask") or {}).get("box")
    if box is not None and (box[2] <= box[0] or box[3] <= box[1]):
        raise ConfigError(f"dataset {name!r}: label_mask box {box} needs x0 < x1 and y0 < y1")


def _check_datasets(config: dict) -> None:
    demo_roots = {str(d["root"]): n for n, d in config["datasets"].items() if "demo" in d}
    for name, dataset in config["datasets"].items():
        if dataset.get("layout") == "union":
            for source in dataset["sources"]:
                if source not in config["datasets"] or source == name:
                    raise ConfigError(f"dataset {name!r}: unknown source dataset {source!r}")
                if config["datasets"][source].get("layout") == "union":
                    raise ConfigError(f"dataset {name!r}: source {source!r} is itself a union")
                if config["datasets"][source].get("layout") == "weld":
                    raise ConfigError(
                        f"dataset {name!r}: source {source!r} has layout weld, whose runs "
                        "(video, audio, sensor columns) a union would not keep"
                    )
            continue
        _check_weld_keys(name, dataset)
        owner = demo_roots.get(str(dataset["root"]), name)
        if owner != name:
            raise ConfigError(
                f"datasets {owner!r} and {name!r} share the root {dataset['root']!r}, where "
                f"{owner!r} generates its demo data"
            )
        if not dataset.get("categories"):
            raise ConfigError(f"dataset {name!r}: no categories listed")
        if "demo" in dataset and not isinstance(dataset["categories"], list):
            raise ConfigError(f"dataset {name!r}: the generated demo needs a list of categories")


def _check_backbones(config: dict) -> None:
    for name, backbone in config["backbones"].items():
        if backbone["model"] not in REGISTRY:
            raise ConfigError(
                f"backbone {name!r}: unknown model {backbone['model']!r} "
                f"(registered: {', '.join(sorted(REGISTRY))})"
            )
        family = REGISTRY[backbone["model"]].family
        for key in ("token_norm", "smaller_edge"):
            if backbone.get(key) and family != "vit":
                raise ConfigError(
                    f"backbone {name!r}: {key} is for ViT backbones ({backbone['model']} is "
                    f"a {family} model)"
                )
        if backbone.get("resample", "bilinear") != "bilinear" and family != "clip":
            raise ConfigError(
                f"backbone {name!r}: resample is the CLIP image filter ({backbone['model']} is "
                f"a {family} model, resized bilinear by feature extraction)"
            )
        layers = resolve_layers(backbone["model"], backbone.get("layers"))
        if backbone.get("dim") is not None and backbone["dim"] < len(layers):
            raise ConfigError(
                f"backbone {name!r}: dim {backbone['dim']} is smaller than its {len(layers)} taps"
            )


def _check_encoders(config: dict) -> None:
    """Each ``encoders:`` entry's backbone exists and its options fit its modality; the entries
    get their modality's defaults written out (a changed default reruns like a changed value)."""
    from iadbench.features.modalities import check_encoder

    if config.get("encoders"):
        config["encoders"] = {
            name: check_encoder(entry, config["backbones"], name)
            for name, entry in config["encoders"].items()
        }


def _check_train_sets(config: dict) -> None:
    for name, spec in (config.get("train_sets") or {}).items():
        dataset = config["datasets"].get(spec["dataset"])
        if dataset is None:
            raise ConfigError(f"train_sets {name!r}: unknown dataset {spec['dataset']!r}")
        if spec["split"] not in _train_set_splits(dataset):
            raise ConfigError(
                f"train_sets {name!r}: dataset {spec['dataset']!r} has no split "
                f"{spec['split']!r} (val needs val_split; train_labelled needs "
                f"val_split.labelled_fraction > 0)"
            )
        listed = dataset["categories"]
        if isinstance(spec["categories"], list) and isinstance(listed, (list, dict)):
            if unknown := sorted(set(spec["categories"]) - set(listed)):
                raise ConfigError(
                    f"train_sets {name!r}: categories {unknown} are not in dataset "
                    f"{spec['dataset']!r}"
                )


def _categories_meet(a, b) -> bool:
    """Whether two category selections (lists, or "all") can share a category."""
    if a == "all" or b == "all":
        return True
    return bool(set(a) & set(b))


def _check_roles(config: dict, name: str, train_set: str) -> None:
    """Training data, calibration/selection data (val) and reported data (test) stay disjoint."""
    spec = config["train_sets"][train_set]
    if spec["split"] not in ("val", "test"):
        return
    for dataset in method_datasets(config, name):
        if dataset != spec["dataset"]:
            continue
        if _categories_meet(spec["categories"], config["datasets"][dataset]["categories"]):
            role = "reported" if spec["split"] == "test" else "calibration/selection"
            raise ConfigError(
                f"method {name!r} trains on train set {train_set!r} ({dataset} split "
                f"{spec['split']!r}), which is also its {role} data on dataset {dataset!r}; "
                f"score it on another dataset (datasets: [...]) or train on other categories"
            )


def _check_method(config: dict, name: str, method: dict) -> None:
    try:
        params = params_of(method)
        needs = params.needs()
    except (ConfigError, TypeError, ValueError) as exc:
        raise ConfigError(f"method {name!r}: {exc}") from None
    backbone = method.get("backbone")
    # causal_film's text anchor: the fit encodes its prompt with this CLIP entry's text tower
    anchored = getattr(params, "text_anchor", None) is not None
    if anchored and backbone is None:
        raise ConfigError(f"method {name!r}: text_anchor needs backbone: (a CLIP entry)")
    if needs.inputs & ENCODED or anchored:
        if backbone not in config["backbones"]:
            raise ConfigError(
                f"method {name!r}: backbone {backbone!r} is not defined under backbones: "
                f"(defined: {', '.join(config['backbones'])})"
            )
        model = config["backbones"][backbone]["model"]
        clip = needs.inputs & {"visual", "windows", "text"} or anchored
        if clip and REGISTRY[model].family != "clip":
            raise ConfigError(
                f"method {name!r}: backbone {backbone!r} is {model}, not a CLIP model "
                f"(CLIP models: {', '.join(m for m, s in REGISTRY.items() if s.family == 'clip')})"
            )
        try:
            params.check_backbone(config["backbones"][backbone])
        except ConfigError as exc:
            raise ConfigError(f"method {name!r}: backbone {backbone!r}: {exc}") from None
        if needs.blocks:
            resolve_layers(model, list(needs.blocks))
        if "visual" in needs.inputs:
            try:  # a kind's own view (Crane's): its blocks and guidance backbone
                params.visual_view(model, config["backbones"])
            except ConfigError as exc:
                raise ConfigError(f"method {name!r}: {exc}") from None
        if needs.prompts is not None:
            _check_prompts(config, name, needs.prompts)
    elif backbone is not None:
        hint = " or set text_anchor" if hasattr(params, "text_anchor") else ""
        raise ConfigError(
            f"method {name!r}: its kind reads no cached features; drop backbone:{hint}"
        )
    _check_embeddings(config, name, needs)
    reads_images = needs.inputs & (ENCODED | {"images"})
    # Kinds that read each run's photos themselves (label box blanked) run on runs only.
    run_photos = getattr(params, "run_photos", False)
    if reads_images and not needs.embeddings:  # multimodal kinds read masked photo embeddings
        for dataset in method_datasets(config, name):
            layout = config["datasets"].get(dataset, {}).get("layout")
            if layout in MULTIMODAL_LAYOUTS and not run_photos:
                raise ConfigError(
                    f"method {name!r} reads {', '.join(sorted(reads_images))} of each sample's "
                    f"image, but dataset {dataset!r} ({layout}) holds runs of several photos "
                    "(and a printed label to mask): use a kind that reads photo embeddings, "
                    "e.g. view_patchcore, or view_dinomaly"
                )
            if run_photos and layout not in MULTIMODAL_LAYOUTS:
                raise ConfigError(
                    f"method {name!r} reads each run's post-weld photos, but dataset "
                    f"{dataset!r} ({layout}) has no runs (multimodal layouts: "
                    f"{', '.join(MULTIMODAL_LAYOUTS)})"
                )
    for dataset in method_datasets(config, name):
        if dataset not in config["datasets"]:
            raise ConfigError(f"method {name!r}: unknown dataset {dataset!r}")
        if needs.training == "per_category" and needs.fit_on == "val":
            if not has_val(config["datasets"][dataset]):
                raise ConfigError(
                    f"method {name!r} is fitted on the val split, but dataset {dataset!r} has "
                    f"none: add val_split: {{fraction: ...}} to it"
                )
        if missing := params.splits_read() - _train_set_splits(config["datasets"][dataset]):
            raise ConfigError(
                f"method {name!r} reads split(s) {sorted(missing)} that dataset {dataset!r} "
                "does not have (train_labelled needs val_split.labelled_fraction > 0)"
            )
    train_on = method.get("train_on")
    if needs.training == "train_set":
        if train_on not in (config.get("train_sets") or {}):
            raise ConfigError(
                f"method {name!r}: train_on {train_on!r} is not a key of train_sets: "
                f"(defined: {', '.join(config.get('train_sets') or {}) or 'none'})"
            )
        _check_roles(config, name, train_on)
    elif train_on is not None:
        raise ConfigError(f"method {name!r}: train_on is only for kinds trained on a train set")
    uses = method.get("uses") or {}
    if set(uses) != set(needs.uses):
        raise ConfigError(
            f"method {name!r}: uses: must name exactly the roles {list(needs.uses)}, "
            f"got {sorted(uses)}"
        )
    for role, other in uses.items():
        if other not in config["methods"] or other == name:
            raise ConfigError(f"method {name!r}: uses.{role} {other!r} is not another method")
        missing = set(method_datasets(config, name)) - set(method_datasets(config, other))
        if missing:
            raise ConfigError(
                f"method {name!r}: uses.{role} {other!r} does not run on {sorted(missing)}"
            )


def _check_embeddings(config: dict, name: str, needs) -> None:
    """A multimodal method's encoders exist, read the modality of their role, and its datasets
    are of a layout that has those modalities."""
    encoders = config.get("encoders") or {}
    for role, encoder in needs.embeddings:
        if encoder not in encoders:
            raise ConfigError(
                f"method {name!r}: encoders.{role} {encoder!r} is not a key of encoders: "
                f"(defined: {', '.join(encoders) or 'none'})"
            )
        modality = encoders[encoder]["modality"]
        if role in MODALITIES and modality != role:
            raise ConfigError(
                f"method {name!r}: encoders.{role} is {encoder!r}, a {modality} encoder"
            )
        for dataset in method_datasets(config, name):
            layout = config["datasets"][dataset].get("layout")
            if layout not in MULTIMODAL_LAYOUTS:
                raise ConfigError(
                    f"method {name!r}: dataset {dataset!r} ({layout}) has no {modality} files "
                    f"(multimodal layouts: {', '.join(MULTIMODAL_LAYOUTS)})"
                )


def _check_prompts(config: dict, name: str, prompts: str) -> None:
    from iadbench.clip.prompts import PROMPT_SETS

    if prompts not in PROMPT_SETS and prompts not in (config.get("prompt_sets") or {}):
        raise ConfigError(
            f"method {name!r}: prompts {prompts!r} is neither built in "
            f"({', '.join(sorted(PROMPT_SETS))}) nor a key of prompt_sets:"
        )


def _check_uses_cycles(config: dict) -> None:
    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise ConfigError(f"methods use each other in a cycle: {' -> '.join((*path, name))}")
        for other in (config["methods"][name].get("uses") or {}).values():
            visit(other, (*path, name))

    for name in config["methods"]:
        visit(name, ())


def check_references(config: dict) -> None:
    """Fail at start-up, naming the entry, when a config refers to something unknown."""
    _check_datasets(config)
    _check_backbones(config)
    _check_encoders(config)
    _check_train_sets(config)
    for name, method in config["methods"].items():
        _check_method(config, name, method)
    _check_uses_cycles(config)
    for spec in config.get("cross_domain") or []:
        if spec["dataset"] not in config["datasets"]:
            raise ConfigError(f"cross_domain: unknown dataset {spec['dataset']!r}")
        for name in methods_of_entry(config, spec["method"]):
            if needs_of(config["methods"][name]).training != "per_category":
                raise ConfigError(
                    f"cross_domain: method {name!r} is not fitted per category, so it has no "
                    f"fit on one category to score on another"
                )


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a mapping with the same key twice (YAML keeps the last)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(
                f"{loader.name}: line {key_node.start_mark.line + 1}: key {key!r} appears twice "
                f"in one mapping (first at line {seen[key] + 1}); YAML would silently keep the "
                f"last one"
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def check_config_file(path: str | Path) -> None:
    """Reject duplicate keys (e.g. two datasets with the same name) in a YAML config file."""
    path = Path(path)
    with path.open() as fh:
        loader = _UniqueKeyLoader(fh)
        loader.name = str(path)
        try:
            loader.get_single_data()
        finally:
            loader.dispose()
