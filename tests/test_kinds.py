"""A kind's parameters are declared once, in its dataclass: the config schema, the refusal of a
bad value, ``iadbench kinds`` and the docs' tables all come from those declarations; and the
lower layers never import the methods."""

from __future__ import annotations

import ast
import copy
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from iadbench.cli import main
from iadbench.config import prepare_config, validate_schema, with_kinds
from iadbench.errors import ConfigError
from iadbench.methods.kinds import KINDS, params_class, params_of

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "iadbench"
SCHEMA = REPO / "config" / "schema.yaml"
CASES = [(kind, f.name) for kind in KINDS for f in params_class(kind).parameters()]
# Dummy values of the entry keys a kind requires (the schema checks shapes before references).
REQUIRED = {"backbone": "bb", "train_on": "t", "uses": {"gate": "g", "heatmap": "h"}}


def config_of(kind: str, extra: dict) -> dict:
    cls = params_class(kind)
    entry = {"kind": kind, **{k: REQUIRED[k] for k in cls.required_keys}, **extra}
    return {
        "datasets": {"d": {"root": "r", "categories": ["x"]}},
        "backbones": {"bb": {"model": "efficientnet_lite0"}},
        "methods": {"m": copy.deepcopy(entry)},
    }


def prepare(kind: str, extra: dict) -> dict:
    return prepare_config(config_of(kind, extra), SCHEMA, ["test.yaml"])[0]


def bad_value(schema: dict):
    """A value the declaration refuses: past a bound, outside its values, or of another type."""
    if "enum" in schema:
        return "no_such_value"
    for key, step in (("minimum", -1), ("exclusiveMinimum", 0), ("maximum", 1)):
        if key in schema:
            return schema[key] + step
    if "exclusiveMaximum" in schema:
        return schema["exclusiveMaximum"]
    for value in ("no_such_value", -1.5, {"no_such_key": 1}):
        if not jsonschema.Draft202012Validator(schema).is_valid(value):
            return value
    raise AssertionError(f"no refused value for {schema}")


def sections(markdown: str) -> dict[str, str]:
    parts = markdown.split("### `")[1:]
    return {part.split("`", 1)[0]: part for part in parts}


def test_every_parameter_is_listed_with_its_default_range_and_description(capsys):
    assert main(["kinds"]) == 0
    text = capsys.readouterr().out
    assert main(["kinds", "--markdown"]) == 0
    tables = sections(capsys.readouterr().out)
    assert list(tables) == list(KINDS)
    for kind in KINDS:
        cls = params_class(kind)
        assert cls.summary() in tables[kind]
        for row in cls.rows():
            assert row["description"].strip() and row["allowed"], (kind, row["name"])
            default = f" = {row['default']}" if row["default"] else ""
            assert f"{row['name']}{default}  [{row['allowed']}]" in text
            assert row["description"] in text
            assert f"| `{row['name']}` | `{row['default']}` |" in tables[kind], (kind, row)
    assert main(["kinds", "--markdown", "--kind", "crane"]) == 0
    assert list(sections(capsys.readouterr().out)) == ["crane"]


@pytest.mark.parametrize(("kind", "key"), CASES)
def test_a_value_its_declaration_refuses_names_the_method_and_the_key(kind, key):
    value = bad_value(params_class(kind).field_schema(key))
    with pytest.raises(ConfigError, match=rf"kind '{kind}': {key}(\.\w+)?: .*\(allowed: .+\)"):
        params_of({"kind": kind, key: value})
    with pytest.raises(ConfigError, match=rf"^test\.yaml: methods\.m\.{key}\b"):
        prepare(kind, {key: value})


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_unknown_key_names_the_method_and_the_key(kind):
    with pytest.raises(ConfigError, match=rf"unknown key\(s\) \['colour'\] for kind '{kind}'"):
        params_of({"kind": kind, "colour": 1})
    with pytest.raises(ConfigError, match=r"^test\.yaml: methods\.m: .*'colour' was unexpected"):
        prepare(kind, {"colour": 1})


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_schema_fills_each_default_in_the_listed_order(kind):
    config = config_of(kind, {})
    validate_schema(config, SCHEMA, ["test.yaml"])
    entry, cls = config["methods"]["m"], params_class(kind)
    assert [k for k in entry if k in cls().to_dict()] == [f.name for f in cls.parameters()]
    assert {k: entry[k] for k in cls().to_dict()} == cls().to_dict()


def test_value_lists_shared_with_lower_layers_are_the_same():
    from iadbench.data.synthetic import SYNTHETIC_MODES
    from iadbench.metrics.calibration import METHODS
    from iadbench.training.config import OPTIMIZERS, SCHEDULES

    classifier = params_class("classifier")
    assert classifier.field_schema("optimizer")["enum"] == list(OPTIMIZERS)
    assert classifier.field_schema("schedule")["enum"] == list(SCHEDULES)
    assert classifier.field_schema("synthetic")["enum"] == list(SYNTHETIC_MODES)
    assert set(params_class("cascade").field_schema("calibration")["enum"]) <= set(METHODS)


def test_a_new_kind_is_its_params_module_and_one_registry_line(monkeypatch, capsys):
    """``tests/plugins/toy_kind.py`` stands in for a new ``methods/<kind>/params.py``: one line
    in KINDS puts it in the config schema (its refusals, its defaults) and ``iadbench kinds``."""
    from iadbench.methods import kinds

    monkeypatch.setitem(kinds.KINDS, "toy", "toy_kind:ToyParams")
    schema = with_kinds(yaml.safe_load(SCHEMA.read_text()))
    entry_schema = schema["properties"]["methods"]["additionalProperties"]
    validator = jsonschema.Draft202012Validator(entry_schema)
    assert validator.is_valid({"kind": "toy", "hidden": 8})
    assert not validator.is_valid({"kind": "toy", "hidden": "eight"})
    assert not validator.is_valid({"kind": "toy", "colour": 1})
    assert main(["kinds", "--kind", "toy"]) == 0
    assert "hidden = 4  [integer]" in capsys.readouterr().out


def test_parameter_modules_import_no_deep_learning_library():
    code = (
        "import sys; from iadbench.methods.kinds import registered; "
        "[cls.json_schema() for cls in registered().values()]; "
        "heavy = {'torch', 'faiss', 'open_clip', 'timm'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _imported(path: Path) -> list[str]:
    """Absolute names of the modules (and ``from`` names) a source file imports."""
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            names += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    return names


def test_no_import_runs_back_up_the_layers():
    offenders = [
        f"{path.relative_to(SRC)}: {name}"
        for layer in ("clip", "features", "data", "metrics")
        for path in sorted((SRC / layer).rglob("*.py"))
        for name in _imported(path)
        if name == "iadbench.methods" or name.startswith("iadbench.methods.")
    ]
    assert not offenders
