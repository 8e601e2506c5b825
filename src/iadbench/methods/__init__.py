"""Anomaly detection methods behind one interface (:class:`iadbench.methods.base.Method`).

Nothing is imported here. A kind is one folder, ``methods/<kind>/``: its torch-free ``params.py``
(parameters, needs; read while the DAG is built, through the registry :mod:`.kinds`) and its
implementation, imported by :func:`build_method` in jobs only. Shared building blocks (the base
class, banks, coreset, kNN, the trained-CLIP and multimodal groups) are modules beside them.
"""

from __future__ import annotations


def build_method(cfg: dict, device: str = "auto"):
    """Instantiate the implementation of a config entry's ``kind`` (imports it lazily)."""
    from iadbench.errors import ConfigError
    from iadbench.methods.kinds import import_string, params_class

    cls = import_string(params_class(cfg.get("kind")).implementation)
    try:
        return cls(cfg, device=device)
    except TypeError as exc:
        raise ConfigError(f"kind {cfg.get('kind')!r}: {exc}") from None
