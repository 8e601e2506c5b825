"""What every method kind declares: its parameters, each with its metadata, and its needs.

Torch-free: the rules read it while Snakemake builds the DAG. A kind's parameter dataclass (a
:class:`Params` subclass in ``methods/<kind>/params.py``) declares each parameter once, with
:func:`param`: its default, a one-line description and the values it allows, written as JSON
Schema keywords. Everything else comes from those declarations: the kind's part of the config
schema (:meth:`Params.json_schema`, merged into ``config/schema.yaml`` at start-up by
:mod:`iadbench.config`), the refusal of a wrong value with the kind, the key and what is allowed
(:meth:`Params.from_entry`), ``iadbench kinds`` and the docs' parameter tables
(:meth:`Params.markdown`). A kind's own :meth:`Params.check` holds only the rules that tie
several values together.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from iadbench.errors import ConfigError

INPUTS = frozenset(
    {"features", "visual", "windows", "images", "text", "scores", "audio", "video", "sensor"}
)
# Inputs computed by the method's ``backbone`` (the feature store, CLIP's cached outputs).
ENCODED = frozenset({"features", "visual", "windows", "text"})
TRAINING = ("none", "per_category", "train_set", "per_dataset")
# Keys every method entry may carry besides its kind's parameters (described in schema.yaml).
COMMON_KEYS = ("kind", "backbone", "datasets", "seed", "grid", "train_on", "uses")


@dataclass(frozen=True)
class Needs:
    """What a method consumes and how it learns; the rules build exactly this, nothing more.

    ``inputs``: cached ``features`` (needs a ``backbone``); a CLIP ``backbone``'s cached ``visual``
    outputs (the CLS embedding and, at ``blocks``, patch tokens on ``token_path``), ``windows``
    (WinCLIP's window embeddings for each size in ``windows``) and ``text`` (sentence embeddings of
    the ``prompts`` set for each category's class name); ``images`` (read by the method from the
    manifest), ``scores`` (other methods' outputs, by the roles in ``uses``), or other modalities.
    ``training``: ``none`` (zero-shot), ``per_category`` (one-class fit on each category's
    ``fit_on`` split) or ``train_set`` (trained once on the config's named train set ``train_on``,
    scored on any dataset) or ``per_dataset`` (trained once per dataset on the ``train`` split of
    all its categories together: multi-class models such as Dinomaly's). ``fit_on``: ``train``
    for one-class fits, ``val`` for methods whose whole "fit" is calibration on validation
    scores (the dataset must have a ``val_split``).
    ``maps``: whether pixel maps are produced (else pixel metrics are n/a). ``probabilities``: image
    scores are calibrated probabilities (ECE is reported). ``noisy_text``: ``(R, σ, seed)`` of
    the cached noisy text prototypes the method reads beside ``text`` (Crane's Bayes path).
    ``uncertainty``: score tables carry per-image ``score_std`` and ``map_std_mean`` columns,
    which the variance analysis reads. ``embeddings``: ``(role, encoder)`` pairs of the cached
    per-modality embeddings a multimodal kind reads (``encoder`` a key of the config's
    ``encoders``; the role is the method's name for it, e.g. ``video``, ``audio``, ``photo``).
    ``fit_features``: cached feature splits a ``features`` fit reads besides ``fit_on`` (``val``
    for calibration). ``synthetic_features``: ``(recipe, copies, seed)`` of synthetic anomalies
    made from the ``train`` images whose features the fit reads, extracted once into the store.
    """

    inputs: frozenset[str]
    training: str
    maps: bool = True
    uses: tuple[str, ...] = ()
    fit_on: str = "train"
    probabilities: bool = False
    token_path: str = "projected"
    blocks: tuple[int, ...] = ()
    windows: tuple[int, ...] = ()
    prompts: str | None = None
    noisy_text: tuple[int, float, int] | None = None
    uncertainty: bool = False
    embeddings: tuple[tuple[str, str], ...] = ()
    fit_features: tuple[str, ...] = ()
    synthetic_features: tuple[str, int, int] | None = None

    def __post_init__(self) -> None:
        if unknown := set(self.inputs) - INPUTS:
            raise ConfigError(f"unknown method inputs {sorted(unknown)} (known: {sorted(INPUTS)})")
        if self.training not in TRAINING:
            raise ConfigError(f"unknown training {self.training!r} (known: {', '.join(TRAINING)})")
        if self.fit_on not in ("train", "val"):
            raise ConfigError(f"fit_on must be train or val, got {self.fit_on!r}")


# --- declaring a parameter -----------------------------------------------------------------------

_SCHEMA = "iadbench.schema"  # field metadata keys
_DOC = "iadbench.doc"
_OWN_TYPE = "iadbench.own_type"
_JSON_TYPES = {
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "str": "string",
    "list": "array",
    "dict": "object",
    "None": "null",
}


def param(default: Any, doc: str, *, schema: Mapping | None = None, **keywords: Any) -> Any:
    """A parameter: its ``default``, a one-line ``doc`` and what values it allows.

    ``keywords`` are JSON Schema keywords under their JSON names (``enum``, ``minimum``,
    ``exclusiveMaximum``, ``items``, ``minItems``, ``uniqueItems``, ``properties``...); they add
    to the type the field's annotation gives (``int`` -> integer, ``float | None`` -> number or
    null...; an ``enum`` needs no type). ``schema`` replaces that type for shapes an annotation
    cannot say (``oneOf`` alternatives). A list or dict default is copied for every instance.
    """
    metadata = {_SCHEMA: {**(schema or {}), **keywords}, _DOC: doc, _OWN_TYPE: schema is not None}
    if isinstance(default, (list, dict)):
        return dataclasses.field(
            default_factory=functools.partial(copy.deepcopy, default), metadata=metadata
        )
    return dataclasses.field(default=default, metadata=metadata)


def _default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return copy.deepcopy(field.default)


def _annotation_type(cls: type, field: dataclasses.Field) -> str | list[str]:
    """The JSON type(s) of a field's annotation (a string: modules use postponed annotations)."""
    names = [part.strip() for part in str(field.type).split("|")]
    unknown = [name for name in names if name not in _JSON_TYPES]
    if unknown:
        raise TypeError(
            f"{cls.__name__}.{field.name}: annotation {field.type!r} has no JSON type; "
            "give param(..., schema={...})"
        )
    types = [_JSON_TYPES[name] for name in names]
    return types[0] if len(types) == 1 else types


# --- the base class ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    """Base of every kind's parameter dataclass; subclasses add fields declared with :func:`param`.

    A plain ``name: int = 3`` field also works (plugin kinds): its type comes from the annotation
    and it has no description.
    """

    implementation: ClassVar[str] = ""
    # Whether the opt-in latency step times this kind (its Method implements ``latency``).
    timed: ClassVar[bool] = False
    # The keys of COMMON_KEYS this kind's entries may carry, each with what it means for the kind
    # ("" = its meaning in config/schema.yaml), and those an entry must carry.
    entry_keys: ClassVar[Mapping[str, str]] = dict.fromkeys(COMMON_KEYS, "")
    required_keys: ClassVar[tuple[str, ...]] = ()
    # The order the parameters are listed in (schema, docs; default fills of an entry follow it,
    # and an entry's key order is part of what Snakemake's params trigger compares) when it is
    # not the fields' own, which inheritance fixes.
    order: ClassVar[tuple[str, ...]] = ()

    def needs(self) -> Needs:
        raise NotImplementedError

    def check(self) -> None:
        """Raise :class:`ConfigError` for combinations of values that are refused (the values
        one by one are checked against their declarations before)."""

    def splits_read(self) -> frozenset[str]:
        """Splits a fit reads besides ``fit_on`` (checked against each dataset at start-up)."""
        return frozenset()

    def describe(self, state: dict) -> dict[str, Any]:
        """Provenance columns a result row gets from this method (``state``: its state.json)."""
        return {}

    def check_backbone(self, backbone: Mapping[str, Any]) -> None:
        """Raise :class:`ConfigError` when the method's ``backbone`` entry (defaults filled) does
        not compute what the kind reads (AnomalyDINO: unaggregated ViT tokens)."""

    def visual_view(self, model: str, backbones: Mapping[str, dict]) -> tuple[str, dict] | None:
        """A visual view the kind computes itself: ``(name, options)`` with the options resolved
        against its CLIP ``model`` and the config's ``backbones``; None for the plain views
        (token path + blocks). Raises :class:`ConfigError` for options that do not fit them.
        """
        return None

    # --- declarations -> schema, validation, docs ---

    @classmethod
    def parameters(cls) -> list[dataclasses.Field]:
        """The parameter fields, in their listed order (:attr:`order`, else the fields')."""
        fields = list(dataclasses.fields(cls))
        if not cls.order:
            return fields
        by_name = {f.name: f for f in fields}
        if set(cls.order) != set(by_name):
            raise TypeError(f"{cls.__name__}.order must list exactly its fields")
        return [by_name[name] for name in cls.order]

    @classmethod
    def field_schema(cls, name: str) -> dict[str, Any]:
        """The JSON Schema of one parameter: allowed values, ``default`` and ``description``
        (shared: never modify it)."""
        return _field_schemas(cls)[name]

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The kind's part of the config schema: an entry's keys, each parameter's schema."""
        properties: dict[str, Any] = {
            key: {"description": doc} if doc else {} for key, doc in cls.entry_keys.items()
        }
        properties.update(_field_schemas(cls))
        schema: dict[str, Any] = {"additionalProperties": False, "properties": properties}
        if cls.required_keys:
            schema["required"] = list(cls.required_keys)
        return schema

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> Params:
        """The parameters of a method entry: unknown keys and values that break a parameter's
        declaration are refused, naming the kind, the key and what is allowed."""
        kind = entry.get("kind")
        names = [f.name for f in dataclasses.fields(cls)]
        extra = sorted(set(entry) - set(names) - set(cls.entry_keys))
        if extra:
            raise ConfigError(
                f"unknown key(s) {extra} for kind {kind!r} "
                f"(its parameters: {', '.join(sorted(names)) or 'none'})"
            )
        values = {k: v for k, v in entry.items() if k in names}
        if error := _first_error(cls, values):
            path = list(error.absolute_path)
            schema = _schema_at(cls.field_schema(str(path[0])), path[1:])
            raise ConfigError(
                f"kind {kind!r}: {'.'.join(map(str, path))}: {error.message} "
                f"(allowed: {allowed(schema)})"
            )
        params = cls(**values)
        params.check()
        return params

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def rows(cls) -> list[dict[str, str]]:
        """One row per parameter, and per described key of a mapping parameter (``rcs.lam``):
        ``name``, ``default`` (JSON), ``allowed``, ``description``."""
        rows = []
        for f in cls.parameters():
            schema = cls.field_schema(f.name)
            rows.append(
                {
                    "name": f.name,
                    "default": json.dumps(_default(f)),
                    "allowed": allowed(schema),
                    "description": f.metadata.get(_DOC, ""),
                }
            )
            for key, sub in schema.get("properties", {}).items():
                if "description" in sub:
                    rows.append(
                        {
                            "name": f"{f.name}.{key}",
                            "default": json.dumps(sub["default"]) if "default" in sub else "",
                            "allowed": allowed(sub),
                            "description": sub["description"],
                        }
                    )
        return rows

    @classmethod
    def summary(cls) -> str:
        """The class docstring's first paragraph, on one line."""
        return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())

    @classmethod
    def entry_line(cls) -> str:
        """The entry keys this kind takes besides its parameters, with their meaning for it."""
        keys = []
        for key, doc in cls.entry_keys.items():
            if key == "kind":
                continue
            notes = (["required"] if key in cls.required_keys else []) + ([doc] if doc else [])
            keys.append(f"{key} ({'; '.join(notes)})" if notes else key)
        return ", ".join(keys)

    @classmethod
    def markdown(cls, name: str) -> str:
        """The kind's parameter table in Markdown, headed by its name, summary and entry keys."""
        lines = [f"### `{name}`", "", cls.summary(), "", f"Entry keys: {cls.entry_line()}.", ""]
        lines += ["| parameter | default | allowed | description |", "|---|---|---|---|"]
        for row in cls.rows():
            cells = [f"`{row['name']}`", f"`{row['default']}`", row["allowed"], row["description"]]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        return "\n".join(lines) + "\n"


@functools.cache
def _field_schemas(cls: type[Params]) -> dict[str, dict[str, Any]]:
    out = {}
    for f in cls.parameters():
        declared = dict(f.metadata.get(_SCHEMA, {}))
        if f.metadata.get(_OWN_TYPE) or "enum" in declared:
            schema = declared
        else:
            schema = {"type": _annotation_type(cls, f), **declared}
        schema["default"] = _default(f)
        if doc := f.metadata.get(_DOC):
            schema["description"] = doc
        out[f.name] = schema
    return out


@functools.cache
def _validator(cls: type[Params]):
    import jsonschema  # here: what never validates an entry need not import it

    return jsonschema.Draft202012Validator({"properties": _field_schemas(cls)})


def _schema_at(schema: Mapping[str, Any], path: list) -> Mapping[str, Any]:
    """The declared schema of a nested value (``rcs.lam``), or the nearest one above it."""
    for key in path:
        if isinstance(key, str) and key in schema.get("properties", {}):
            schema = schema["properties"][key]
        elif isinstance(key, int) and isinstance(schema.get("items"), Mapping):
            schema = schema["items"]
        else:
            break
    return schema


def _first_error(cls: type[Params], values: dict[str, Any]):
    """The most relevant way ``values`` break their declarations, or None."""
    import jsonschema

    return jsonschema.exceptions.best_match(_validator(cls).iter_errors(values))


# --- what a schema allows, in words ---------------------------------------------------------------

_TYPE_WORDS = {
    "integer": "integer",
    "number": "number",
    "boolean": "true or false",
    "string": "string",
    "null": "null",
    "array": "list",
    "object": "mapping",
}


def _bounds(schema: Mapping[str, Any]) -> str:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    low_open, high_open = "exclusiveMinimum" in schema, "exclusiveMaximum" in schema
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '≥'} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '≤'} {high:g}"
    return ""


def allowed(schema: Mapping[str, Any]) -> str:
    """A short phrase for the values ``schema`` allows (``number in (0, 1]``, ``a, b or c``...)."""
    if "enum" in schema:
        values = [json.dumps(v) if not isinstance(v, str) else v for v in schema["enum"]]
        return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]
    if "const" in schema:
        value = schema["const"]
        return value if isinstance(value, str) else json.dumps(value)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " or ".join(allowed(s) for s in schema[key])
    types = schema.get("type")
    if types is None:
        return "any"
    types = [types] if isinstance(types, str) else list(types)
    words = []
    for kind in types:
        word = _TYPE_WORDS.get(kind, kind)
        if kind in ("integer", "number"):
            word += _bounds(schema)
        elif kind == "string":
            if "pattern" in schema:
                word += f" matching {schema['pattern']}"
            elif schema.get("minLength"):
                word = "non-empty string"
        elif kind == "array":
            low, high = schema.get("minItems"), schema.get("maxItems")
            count = f"{low} " if low is not None and low == high else ""
            distinct = "distinct " if schema.get("uniqueItems") else ""
            items = allowed(schema["items"]) if "items" in schema else ""
            for singular in ("integer", "number", "string"):
                if items.startswith(singular):
                    items = singular + "s" + items[len(singular) :]
            word = "non-empty list" if low and not count else "list"
            if items or count or distinct:
                word += f" of {count}{distinct}{items or 'values'}"
        elif kind == "object" and "properties" in schema:
            keys = [
                f"{key}: {allowed(sub)}" if "const" in sub or "enum" in sub else key
                for key, sub in schema["properties"].items()
            ]
            word = "{" + ", ".join(keys) + "}"
        words.append(word)
    return " or ".join(words)
