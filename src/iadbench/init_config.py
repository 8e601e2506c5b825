"""``iadbench init``: a complete, commented config for a dataset folder, written as YAML text.

The layout is detected (:mod:`iadbench.data.detect`) unless given; the categories found become
the dataset's list; each requested method kind gets an entry with the backbone it needs (a
feature backbone, by default EfficientNet-Lite0 whose ImageNet weights ship with a Python
package, or the kind's reference CLIP model) and every other parameter of its kind as a comment
with its default. Kinds that need more than a dataset and a backbone (a train set, other
methods' scores, multimodal encoders outside the weld layout, a labelled split) are refused
with the example config to start from.

The text is checked before it is returned: it must load, pass the schema and the reference
checks (:func:`iadbench.config.prepare_config`) and name paths that exist. Torch-free.
"""

from __future__ import annotations

import dataclasses
import json
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import yaml

from iadbench.backbones.registry import REGISTRY
from iadbench.data.detect import (
    DATASET_NAMES,
    DETECTABLE,
    Detection,
    detect,
    format_inventory,
    inventory,
)
from iadbench.errors import ConfigError
from iadbench.methods.kinds import params_class

DEFAULT_BACKBONE = "efficientnet_lite0"
# The CLIP model each zero-shot kind's paper (and our reference parity) uses.
CLIP_MODELS = {"winclip": "clip_vit_b16_plus_240", "crane": "clip_vit_l14_336"}
DEFAULT_CLIP = "clip_vit_b16_plus_240"
CLIP_INPUTS = frozenset({"visual", "windows", "text"})
EXAMPLES = {
    "train_set": "config/examples/fe_clip_cross.yaml",
    "uses": "config/examples/cascade_bottle.yaml",
    "multimodal": "config/examples/welding.yaml",
    "labelled": "config/examples/experiments.yaml",
}
SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"


@dataclasses.dataclass
class InitResult:
    """What ``iadbench init`` prints: the YAML (stdout) and the inventory (stderr)."""

    yaml: str
    inventory: str
    detection: Detection


def _json(value) -> str:
    """A YAML flow value (JSON is YAML): quotes category names such as ``01`` and odd paths."""
    return json.dumps(value)


def _weights_note(model: str) -> str:
    spec = REGISTRY[model]
    if spec.package_weights:
        return "ImageNet weights shipped by a Python package"
    if not spec.default_tag:
        return "no published weights: random or a file"
    return f"{spec.library_name}.{spec.default_tag} from a local cache; nothing is downloaded"


def _c(text: str, comment: str = "", width: int = 30) -> str:
    """A YAML line with its comment aligned."""
    return f"{text.ljust(width)} # {comment}" if comment else text


# The backbone entry of PaDiM's published feature geometry: "<model>_padim".
PADIM_SUFFIX = "_padim"


def _kind_plan(kind: str, layout: str, feature_model: str) -> dict:
    """What a kind's entry needs here: ``{"backbone": model | None, "encoders": {...}}``."""
    try:
        cls = params_class(kind)
    except ConfigError as exc:
        raise ConfigError(f"--methods: {exc}") from None
    params = cls()
    needs = params.needs()
    if needs.training == "train_set":
        raise ConfigError(
            f"kind {kind!r} is trained once on a train set (train_sets: + train_on:): write it "
            f"by hand, starting from {EXAMPLES['train_set']}"
        )
    if needs.uses:
        raise ConfigError(
            f"kind {kind!r} combines other methods' scores (uses: {', '.join(needs.uses)}): "
            f"write it by hand, starting from {EXAMPLES['uses']}"
        )
    if params.splits_read() - {"train", "test"} or needs.fit_on != "train":
        raise ConfigError(
            f"kind {kind!r} reads a split cut from the test images (val_split): write it by "
            f"hand, starting from {EXAMPLES['labelled']}"
        )
    plan: dict = {"backbone": None, "encoders": {}}
    if needs.embeddings:
        roles = {role for role, _ in needs.embeddings}
        if layout != "weld" or roles != {"photo"}:
            raise ConfigError(
                f"kind {kind!r} reads encoder embeddings of multimodal runs ({', '.join(roles)}): "
                f"write it by hand, starting from {EXAMPLES['multimodal']}"
            )
        plan["encoders"] = {"photo": "photos"}
        plan["photo_backbone"] = feature_model
        return plan
    if layout == "weld":
        raise ConfigError(
            f"kind {kind!r} reads one image per sample; weld runs hold several photos: use "
            "view_patchcore (photo embeddings), or see " + EXAMPLES["multimodal"]
        )
    if needs.inputs & CLIP_INPUTS:
        plan["backbone"] = CLIP_MODELS.get(kind, DEFAULT_CLIP)
    elif "features" in needs.inputs:
        plan["backbone"] = feature_model
        if kind == "padim" and REGISTRY[feature_model].family == "cnn":
            plan["backbone"] = f"{feature_model}{PADIM_SUFFIX}"
    return plan


def _doc(cls, field: dataclasses.Field) -> str:
    """A parameter's one-line description, where its kind declares one."""
    field_schema = getattr(cls, "field_schema", None)
    if field_schema is not None:
        try:
            return str(field_schema(field.name).get("description") or "")
        except (KeyError, TypeError):
            pass
    return str(field.metadata.get("iadbench.doc") or field.metadata.get("description") or "")


def _field_notes(cls, written: set[str]) -> list[str]:
    """``# name: default`` lines, each with its description, for the parameters not written."""
    defaults = cls().to_dict()
    fields = cls.parameters() if hasattr(cls, "parameters") else dataclasses.fields(cls)
    lines = []
    for f in fields:
        if f.name in written or f.name not in defaults:
            continue
        lines.append(f"    # {f.name}: {_json(defaults[f.name])}")
        lines += [f"    #     {text}" for text in textwrap.wrap(_doc(cls, f), width=86)]
    return lines


def _backbone_block(names: Sequence[str]) -> list[str]:
    lines = [
        "# Backbones by name: a method's backbone: is a key here. A registry model name used",
        "# without an entry gets {model: <name>} with the defaults below (`iadbench backbones`).",
        "backbones:",
    ]
    for name in names:
        padim = name.endswith(PADIM_SUFFIX)
        model = name.removesuffix(PADIM_SUFFIX) if padim else name
        spec = REGISTRY[model]
        lines += [
            f"  {name}:",
            f"    model: {model}",
            _c("    weights: pretrained", _weights_note(model)),
        ]
        if padim:  # METHODS §1.2: the first three stages, raw, nearest to the first's grid
            lines += [
                _c("    layers: [1, 2, 3]", "PaDiM's geometry: the first three stages ..."),
                _c("    patch_size: 1", "... without neighbourhood averaging ..."),
                _c("    upsample: nearest", "... deeper stages repeated to the first's grid"),
            ]
            continue
        layers = _json(list(spec.default_layers))
        lines.append(_c(f"    layers: {layers}", f"the registry's {spec.tap_unit}"))
        if spec.family == "cnn":
            lines.append(_c("    patch_size: 3", "neighbourhood of the patch aggregation"))
    return lines


def _dataset_block(name: str, detection: Detection, root: Path, categories: list[str]) -> list:
    layout = detection.layout
    lines = [
        "datasets:",
        _c(f"  {name}:", "the {dataset} wildcard of result paths"),
        _c(f"    layout: {layout}", f"detected: {detection.label}"),
        f"    root: {_json(str(root))}",
        f"    categories: {_json(categories)}",
        '    # ^ found on disk; "all" reads whatever the root holds when the manifest is built',
    ]
    if layout == "weld":
        lines += [
            _c("    missing_modality: drop_run", "runs without photos: dropped with a warning"),
            _c("    label_mask: null", "the photos show a printed class label (a leak):"),
            "    # measure its box and set label_mask: {box: [x0, y0, x1, y1]} (photo pixels)",
        ]
    else:
        lines += [
            _c("    resize: 256", "images and masks resized to resize x resize ..."),
            _c("    crop: 224", "... then centre-cropped: the evaluation size"),
            "    # val_split: {fraction: 0.2}   # a validation split cut from test (thresholds)",
        ]
    return lines


def build_config(
    root: str | Path,
    layout: str = "auto",
    methods: Sequence[str] | None = None,
    name: str | None = None,
    categories: Sequence[str] | None = None,
    backbone: str = DEFAULT_BACKBONE,
    command: str = "iadbench init",
) -> InitResult:
    """The config text for the dataset at ``root`` and the inventory printed beside it."""
    root = Path(os.path.abspath(root))
    if layout == "auto":
        detection = detect(root)
    elif layout in DETECTABLE:
        detection = Detection(layout, layout, "given with --layout")
    else:
        raise ConfigError(
            f"--layout {layout!r}: init writes {', '.join(DETECTABLE)} (or auto); the folder "
            "layout's categories are globs to write by hand (see config/schema.yaml)"
        )
    counts = inventory(detection.layout, root)
    found = [c.name for c in counts]
    if categories:
        if unknown := [c for c in categories if c not in found]:
            raise ConfigError(
                f"--categories: {', '.join(unknown)} not found under {root} "
                f"(found: {', '.join(found)})"
            )
        counts = [c for c in counts if c.name in categories]
    if backbone not in REGISTRY or REGISTRY[backbone].family == "clip":
        raise ConfigError(
            f"--backbone {backbone!r} is not a registered CNN/ViT model "
            f"({', '.join(m for m, s in REGISTRY.items() if s.family != 'clip')})"
        )
    weld = detection.layout == "weld"
    methods = list(methods or (["view_patchcore"] if weld else ["patchcore"]))
    plans = {kind: _kind_plan(kind, detection.layout, backbone) for kind in methods}
    name = name or DATASET_NAMES[detection.layout]
    models = list(
        dict.fromkeys(
            m for p in plans.values() for m in (p["backbone"], p.get("photo_backbone")) if m
        )
    )
    lines = [
        f"# Written by `{command}`.",
        f"# Dataset: {detection.label} at {root}.",
        "# Check it:  snakemake -n --configfile <this file>",
        "# Run it:    snakemake --cores 8 --resources gpu=1 --configfile <this file>",
        "# Every key: config/README.md, config/schema.yaml; parameters: `iadbench kinds`.",
        _c("device: auto", "auto = CUDA when present, else CPU"),
        _c("fpr_limit: 0.3", "AUPRO integration limit"),
        "",
        *_dataset_block(name, detection, root, [c.name for c in counts]),
        "",
        *_backbone_block(models),
    ]
    if any(p["encoders"] for p in plans.values()):
        photo = next(p["photo_backbone"] for p in plans.values() if p["encoders"])
        lines += [
            "",
            "# Frozen encoders whose embeddings of each run are cached once (weld layout).",
            "encoders:",
            f"  photos: {{modality: photo, backbone: {photo}, size: [224, 448]}}",
        ]
    lines += ["", "methods:"]
    for kind, plan in plans.items():
        cls = params_class(kind)
        lines += [f"  {kind}:", f"    kind: {kind}"]
        written = set()
        if plan["backbone"]:
            lines.append(f"    backbone: {plan['backbone']}")
        if plan["encoders"]:
            lines.append(f"    encoders: {_json(plan['encoders'])}".replace('"', ""))
            written.add("encoders")
        lines.append("    seed: 0")
        lines.append("    # The kind's other parameters, at their defaults:")
        lines += _field_notes(cls, written)
    text = "\n".join(lines) + "\n"
    _check(text)
    return InitResult(text, format_inventory(detection, root, counts), detection)


def _check(text: str) -> None:
    """The written config loads, validates and names existing paths (else it is a bug here)."""
    from iadbench.config import prepare_config
    from iadbench.startup import check_dataset_paths

    config = yaml.safe_load(text)
    if SCHEMA.is_file():  # a source checkout: the workflow's schema is beside the package
        concrete, _ = prepare_config(config, SCHEMA, ["(iadbench init output)"])
        check_dataset_paths(concrete)
