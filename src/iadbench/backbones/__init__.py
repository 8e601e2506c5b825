"""Backbone registry: config name -> timm model, its preprocessing and its tap points."""

from iadbench.backbones.registry import REGISTRY, BackboneSpec, LoadedBackbone, load_backbone
from iadbench.backbones.weights import resolve_weights

__all__ = ["REGISTRY", "BackboneSpec", "LoadedBackbone", "load_backbone", "resolve_weights"]
