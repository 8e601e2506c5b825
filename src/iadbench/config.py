"""Cross-references the JSON schema cannot express: names that must exist elsewhere in config."""

from __future__ import annotations

from iadbench.backbones.registry import REGISTRY
from iadbench.errors import ConfigError
from iadbench.methods import METHODS


def method_datasets(config: dict, method: str) -> list[str]:
    """Datasets a method entry runs on: its ``datasets:`` list, else every dataset."""
    return list(config["methods"][method].get("datasets") or config["datasets"])


def check_references(config: dict) -> None:
    """Fail at start-up, naming the entry, when a config refers to something unknown."""
    roots: dict[str, str] = {}
    for name, dataset in config["datasets"].items():
        root = str(dataset["root"])
        if root in roots:
            raise ConfigError(f"datasets {roots[root]!r} and {name!r} share the root {root!r}")
        roots[root] = name
        if not dataset.get("categories"):
            raise ConfigError(f"dataset {name!r}: no categories listed")
    for name, backbone in config["backbones"].items():
        if backbone["model"] not in REGISTRY:
            raise ConfigError(
                f"backbone {name!r}: unknown model {backbone['model']!r} "
                f"(registered: {', '.join(sorted(REGISTRY))})"
            )
    for name, method in config["methods"].items():
        if method["kind"] not in METHODS:
            raise ConfigError(
                f"method {name!r}: unknown kind {method['kind']!r} "
                f"(known: {', '.join(sorted(METHODS))})"
            )
        if method.get("backbone") not in config["backbones"]:
            raise ConfigError(
                f"method {name!r}: backbone {method.get('backbone')!r} is not defined under "
                f"backbones: (defined: {', '.join(config['backbones'])})"
            )
        for dataset in method_datasets(config, name):
            if dataset not in config["datasets"]:
                raise ConfigError(f"method {name!r}: unknown dataset {dataset!r}")
