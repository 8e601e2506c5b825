"""Declared needs, parameter dataclasses and the config checks built on them (no Snakemake)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest

from iadbench.config import _load_schema, prepare_config
from iadbench.errors import ConfigError
from iadbench.methods.kinds import KINDS, needs_of, params_class, params_of
from iadbench.methods.params import Needs, Params

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"

BASE = {
    "datasets": {
        "a": {"root": "ra", "categories": ["x", "y"], "val_split": {"fraction": 0.3}},
        "b": {"root": "rb", "categories": ["x"]},
    },
    "backbones": {"bb": {"model": "efficientnet_lite0"}},
    "methods": {"pc": {"kind": "patchcore", "backbone": "bb"}},
}
TOY = {"kind": "toy_kind:ToyParams", "backbone": "bb"}


def prepare(**changes) -> dict:
    config = copy.deepcopy(BASE)
    for key, value in changes.items():
        if key == "methods":
            config["methods"].update(value)
        else:
            config[key] = value
    return prepare_config(config, SCHEMA, ["test.yaml"])[0]


def schema_kind_blocks() -> dict[str, dict]:
    schema = _load_schema(str(SCHEMA.resolve()))
    blocks = schema["properties"]["methods"]["additionalProperties"]["allOf"]
    return {b["if"]["properties"]["kind"]["const"]: b["then"]["properties"] for b in blocks}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_generated_schema_carries_every_parameter_and_its_default(kind):
    block = schema_kind_blocks()[kind]
    fields = {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(params_class(kind))
    }
    common = {"kind", "backbone", "datasets", "seed", "grid", "train_on", "uses"}
    assert set(block) - common == set(fields)
    for name, default in fields.items():
        assert block[name].get("default") == default, name


def test_every_registered_kind_is_in_the_schema_and_lazy():
    assert set(schema_kind_blocks()) == set(KINDS)
    assert all(":" in target for target in KINDS.values())


def test_defaults_come_from_the_dataclass_into_every_entry():
    config = prepare(methods={"pc": {"kind": "patchcore", "backbone": "bb", "coreset": 0.2}})
    assert config["methods"]["pc"]["coreset"] == 0.2
    assert config["methods"]["pc"]["bank"] == "greedy"
    toy = prepare(train_sets={"t": {"dataset": "a", "split": "train"}},
                  methods={"toy": {**TOY, "train_on": "t"}})["methods"]["toy"]  # fmt: skip
    assert toy["epochs"] == 3 and toy["hidden"] == 4


def test_needs_follow_the_parameters():
    assert needs_of({"kind": "pixel_kind:PixelParams"}).training == "none"
    assert needs_of({"kind": "pixel_kind:PixelParams", "shots": 2}).training == "per_category"
    assert needs_of({"kind": "padim"}).inputs == frozenset({"features"})


def test_unknown_parameters_and_bad_kinds_are_refused():
    with pytest.raises(ConfigError, match="unknown key"):
        params_of({"kind": "toy_kind:ToyParams", "hiden": 3})
    with pytest.raises(ConfigError, match="cannot import"):
        params_of({"kind": "no_such_module:Params"})
    with pytest.raises(ConfigError, match="unknown kind"):
        params_of({"kind": "no_such_kind"})
    with pytest.raises(ConfigError, match="Params dataclass"):
        params_of({"kind": "pathlib:Path"})


@pytest.mark.parametrize(
    ("methods", "train_sets", "message"),
    [
        ({"toy": TOY}, {}, "train_on None is not a key of train_sets"),
        ({"toy": {**TOY, "train_on": "nope"}}, {"t": {"dataset": "a"}}, "'nope'"),
        ({"pc": {"kind": "patchcore", "backbone": "bb", "train_on": "t"}},
         {"t": {"dataset": "a"}}, "train_on is only for"),
        ({"px": {"kind": "pixel_kind:PixelParams", "backbone": "bb"}}, {}, "drop backbone"),
        ({"pc": {"kind": "patchcore"}}, {}, "backbone None is not defined"),
        ({"toy": {**TOY, "train_on": "t"}}, {"t": {"dataset": "a", "split": "test"}},
         "also its reported data"),
        ({"toy": {**TOY, "train_on": "t"}}, {"t": {"dataset": "a", "split": "val"}},
         "also its calibration/selection data"),
        ({"toy": {**TOY, "train_on": "t"}}, {"t": {"dataset": "b", "split": "val"}},
         "has no split 'val'"),
        ({"toy": {**TOY, "train_on": "t"}}, {"t": {"dataset": "a", "split": "train_labelled"}},
         "labelled_fraction"),
        ({"toy": {**TOY, "train_on": "t"}}, {"t": {"dataset": "zz"}}, "unknown dataset 'zz'"),
        ({"toy": {**TOY, "train_on": "t"}}, {"t": {"dataset": "a", "categories": ["q"]}},
         r"categories \['q'\]"),
    ],
)  # fmt: skip
def test_bad_method_and_train_set_references_are_refused(methods, train_sets, message):
    with pytest.raises(ConfigError, match=message):
        prepare(methods=methods, train_sets=train_sets)


def test_disjoint_roles_allow_another_dataset_or_other_categories():
    on_test = {"t": {"dataset": "a", "split": "test"}}
    prepare(train_sets=on_test, methods={"toy": {**TOY, "train_on": "t", "datasets": ["b"]}})
    other_cats = {"t": {"dataset": "a", "split": "test", "categories": ["y"]}}
    config = copy.deepcopy(BASE)
    config["datasets"]["a"]["categories"] = ["x", "y"]
    config["datasets"]["b"]["categories"] = ["y"]
    config["train_sets"] = {"t": {"dataset": "b", "split": "test", "categories": ["y"]}}
    config["methods"]["toy"] = {**TOY, "train_on": "t", "datasets": ["a"]}
    prepare_config(config, SCHEMA, ["x.yaml"])
    with pytest.raises(ConfigError, match="reported data"):
        prepare(train_sets=other_cats, methods={"toy": {**TOY, "train_on": "t"}})


@dataclasses.dataclass(frozen=True)
class Chain(Params):
    implementation = "x:y"

    def needs(self):
        return Needs(frozenset({"scores"}), "none", uses=("inner",))


def test_uses_must_name_the_declared_roles_and_no_cycle(monkeypatch):
    from iadbench.methods import kinds

    monkeypatch.setitem(kinds.KINDS, "chain", f"{__name__}:Chain")
    config = copy.deepcopy(BASE)
    config["methods"] = {
        "c1": {"kind": "chain", "uses": {"inner": "pc"}},
        "pc": {"kind": "patchcore", "backbone": "bb"},
    }
    from iadbench.config import check_references

    check_references(config)
    config["methods"]["c1"]["uses"] = {"outer": "pc"}
    with pytest.raises(ConfigError, match="exactly the roles"):
        check_references(config)
    config["methods"]["c1"]["uses"] = {"inner": "c2"}
    config["methods"]["c2"] = {"kind": "chain", "uses": {"inner": "c1"}}
    with pytest.raises(ConfigError, match="cycle"):
        check_references(config)


def test_a_labelled_classifier_needs_the_train_labelled_split():
    gate = {"kind": "classifier", "anomalies": "labelled", "datasets": ["a"]}
    with pytest.raises(ConfigError, match=r"\['train_labelled'\].*labelled_fraction"):
        prepare(methods={"gate": gate})
    config = copy.deepcopy(BASE)
    config["datasets"]["a"]["val_split"]["labelled_fraction"] = 0.2
    config["methods"]["gate"] = gate
    assert prepare_config(config, SCHEMA, ["x.yaml"])[0]["methods"]["gate"]["epochs"] == 10


def test_a_cascade_needs_a_val_split_and_its_two_roles():
    methods = {
        "g": {"kind": "classifier"},
        "c": {"kind": "cascade", "uses": {"gate": "g", "heatmap": "pc"}, "datasets": ["b"]},
    }
    with pytest.raises(ConfigError, match="has none: add val_split"):
        prepare(methods=methods)
    methods["c"] = {"kind": "cascade", "uses": {"gate": "g"}, "datasets": ["a"]}
    with pytest.raises(ConfigError, match="exactly the roles"):
        prepare(methods=methods)
