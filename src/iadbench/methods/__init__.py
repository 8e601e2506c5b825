"""Anomaly detection methods behind one interface (:class:`iadbench.methods.base.Method`)."""

from __future__ import annotations

from iadbench.errors import ConfigError
from iadbench.methods.base import Method
from iadbench.methods.padim import Padim
from iadbench.methods.patchcore import PatchCore

METHODS: dict[str, type[Method]] = {cls.kind: cls for cls in (PatchCore, Padim)}


def build_method(cfg: dict, device: str = "auto") -> Method:
    """Instantiate the method named by a config entry's ``kind``."""
    kind = cfg.get("kind")
    if kind not in METHODS:
        raise ConfigError(f"unknown method kind {kind!r} (known: {', '.join(sorted(METHODS))})")
    params = {k: v for k, v in cfg.items() if k not in ("kind", "backbone", "datasets")}
    return METHODS[kind](params, device=device)


__all__ = ["METHODS", "Method", "build_method"]
