"""Config expansion (grids, seed lists, cross-domain cells) and start-up checks."""

from __future__ import annotations

import pytest

from iadbench.config import (
    check_config_file,
    check_references,
    cross_domain_pairs,
    expand_methods,
)
from iadbench.errors import ConfigError


def test_seed_list_and_grid_expand_to_one_named_entry_per_cell():
    methods = {
        "pc": {"kind": "patchcore", "backbone": "a", "seed": [0, 1],
               "grid": {"backbone": ["a", "b"]}},
        "solo": {"kind": "patchcore", "backbone": "a", "seed": 3},
    }  # fmt: skip
    expanded, grid = expand_methods(methods)
    assert sorted(expanded) == [
        "pc+backbone=a+seed=0", "pc+backbone=a+seed=1", "pc+backbone=b+seed=0",
        "pc+backbone=b+seed=1", "solo",
    ]  # fmt: skip
    assert expanded["pc+backbone=b+seed=1"] == {"kind": "patchcore", "backbone": "b", "seed": 1}
    assert expanded["solo"] == methods["solo"]
    assert grid["pc+backbone=b+seed=0"] == {"base": "pc", "axes": {"backbone": "b", "seed": "0"}}
    assert grid["solo"] == {"base": "solo", "axes": {}}


def test_grid_values_that_are_mappings_are_named_by_their_mode():
    methods = {"pc": {"kind": "patchcore", "backbone": "a", "grid": {"fusion": [
        "concat", {"mode": "weighted", "weights": [1, 2]}]}}}  # fmt: skip
    expanded, _ = expand_methods(methods)
    assert expanded["pc+fusion=weighted"]["fusion"] == {"mode": "weighted", "weights": [1, 2]}
    with pytest.raises(ConfigError, match="'mode' or 'name'"):
        expand_methods({"pc": {"kind": "x", "grid": {"fusion": [{"weights": [1]}]}}})


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"backbone": []}, "non-empty list"),
        ({"kind": ["padim"]}, "cannot be a grid axis"),
        ({"backbone": ["a", "a"]}, "twice"),
        ({"backbone": ["x/y"]}, "file name"),
    ],
)
def test_bad_grids_are_rejected_with_the_entry_named(grid, message):
    with pytest.raises(ConfigError, match=message):
        expand_methods({"pc": {"kind": "patchcore", "backbone": "a", "grid": grid}})


def test_cross_domain_cells_cover_every_ordered_pair_and_every_grid_cell():
    config = {
        "methods": {"pc+seed=0": {}, "pc+seed=1": {}, "pcx": {}},
        "cross_domain": [{"method": "pc", "dataset": "d"}],
    }
    cells = cross_domain_pairs(config, lambda d: ["a", "b"])
    assert len(cells) == 2 * 4
    assert {(c["train"], c["test"]) for c in cells} == {
        ("a", "a"),
        ("a", "b"),
        ("b", "a"),
        ("b", "b"),
    }
    assert {c["method"] for c in cells} == {"pc+seed=0", "pc+seed=1"}
    config["cross_domain"] = [{"method": "pc", "dataset": "d", "pairs": [["a", "zzz"]]}]
    with pytest.raises(ConfigError, match="'zzz'"):
        cross_domain_pairs(config, lambda d: ["a", "b"])


def test_duplicate_keys_in_a_config_file_are_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("datasets:\n  demo:\n    root: a\n  demo:\n    root: b\n")
    with pytest.raises(ConfigError, match=r"config.yaml: line 4: key 'demo' appears twice"):
        check_config_file(path)
    path.write_text("datasets:\n  demo:\n    root: a\n  other:\n    root: a\n")
    check_config_file(path)


def test_a_demo_root_cannot_be_shared_with_another_dataset():
    config = {
        "datasets": {
            "demo": {"root": "r", "categories": ["a"], "demo": {}},
            "copy": {"root": "r", "categories": ["a"]},
        },
        "backbones": {},
        "methods": {},
    }
    with pytest.raises(ConfigError, match="share the root"):
        check_references(config)
