"""Backbone registry: config name -> library model, its preprocessing and its tap points."""

from iadbench.backbones.loader import LoadedBackbone, build_model, load_backbone
from iadbench.backbones.registry import REGISTRY, BackboneSpec, resolve_layers, spec_for
from iadbench.backbones.weights import resolve_weights

__all__ = [
    "REGISTRY",
    "BackboneSpec",
    "LoadedBackbone",
    "build_model",
    "load_backbone",
    "resolve_layers",
    "resolve_weights",
    "spec_for",
]
