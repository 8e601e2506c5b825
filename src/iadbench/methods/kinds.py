"""The kind registry: each kind's name -> the ``"module:Class"`` of its parameter dataclass.

A kind is one folder, ``methods/<kind>/``, whose torch-free ``params.py`` holds the dataclass
(the parameters with their metadata, :meth:`~iadbench.methods.params.Params.needs` and the
``implementation`` string of its :class:`~iadbench.methods.base.Method`); adding a kind is that
folder plus one line here. Only the dataclass modules are imported while the DAG is built (every
Slurm job re-parses the Snakefile), lazily, so this module stays light; implementations are
imported by jobs only (:func:`iadbench.methods.build_method`).

A method entry's ``kind`` is a registered name or, for a method kept outside this package, the
``"module:Class"`` import string of its parameter dataclass (a :class:`Params` subclass).
"""

from __future__ import annotations

import importlib
from typing import Any

from iadbench.errors import ConfigError
from iadbench.methods.params import Needs, Params  # noqa: F401  (plugin kinds import them here)

KINDS: dict[str, str] = {
    "patchcore": "iadbench.methods.patchcore.params:PatchCoreParams",
    "padim": "iadbench.methods.padim.params:PadimParams",
    "classifier": "iadbench.methods.classifier.params:ClassifierParams",
    "cascade": "iadbench.methods.cascade.params:CascadeParams",
    "feature_gate": "iadbench.methods.feature_gate.params:FeatureGateParams",
    "winclip": "iadbench.methods.winclip.params:WinClipParams",
    "crane": "iadbench.methods.crane.params:CraneParams",
    "april_gan": "iadbench.methods.april_gan.params:AprilGanParams",
    "fe_clip": "iadbench.methods.fe_clip.params:FeClipParams",
    "causal_film": "iadbench.methods.causal_film.params:CausalFilmParams",
    "late_fusion": "iadbench.methods.late_fusion.params:LateFusionParams",
    "view_patchcore": "iadbench.methods.view_patchcore.params:ViewPatchCoreParams",
    "dinomaly": "iadbench.methods.dinomaly.params:DinomalyParams",
    "view_dinomaly": "iadbench.methods.dinomaly.params:ViewDinomalyParams",
    "anomalydino": "iadbench.methods.anomalydino.params:AnomalyDinoParams",
    "m3dm": "iadbench.methods.m3dm.params:M3dmParams",
}
# What a plugin kind's "module:Class" string looks like (the config schema's pattern for it).
IMPORT_STRING = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$"


def import_string(target: str) -> Any:
    """``"package.module:Name"`` -> the object, with an error that names the string."""
    module, _, name = target.partition(":")
    if not module or not name:
        raise ConfigError(f"{target!r} is not a 'module:Class' import string")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import {target!r}: {exc}") from None


def params_class(kind: str) -> type[Params]:
    """A registered kind's parameter class, or the class a ``"module:Class"`` kind names."""
    if kind in KINDS:
        return import_string(KINDS[kind])
    if isinstance(kind, str) and ":" in kind:
        cls = import_string(kind)
        if not (isinstance(cls, type) and issubclass(cls, Params) and cls.implementation):
            raise ConfigError(
                f"kind {kind!r} must name a Params dataclass with an 'implementation' string"
            )
        return cls
    raise ConfigError(f"unknown kind {kind!r} (registered: {', '.join(sorted(KINDS))})")


def registered() -> dict[str, type[Params]]:
    """Every registered kind's parameter class (imports all their ``params`` modules)."""
    return {name: params_class(name) for name in KINDS}


def params_of(entry: dict) -> Params:
    """The validated parameters of one (concrete, defaults filled) method entry."""
    return params_class(entry["kind"]).from_entry(entry)


def needs_of(entry: dict) -> Needs:
    """What one method entry needs; may depend on its parameters."""
    return params_of(entry).needs()
