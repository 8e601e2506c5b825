"""One function per workflow step: read the step's input files, call the library, write outputs.

The Snakemake scripts and the ``iadbench`` CLI both call these, so every rule can also be run
(and debugged) by hand without Snakemake. One small module per stage; none holds maths. Steps
that need PyTorch import it inside the function: each Snakemake job is a fresh process, and the
data and metrics jobs should not pay seconds of deep-learning imports they never use.

The names below are imported lazily (PEP 562): ``from iadbench.pipeline import make_manifest``
imports only :mod:`iadbench.pipeline.data`, not the evaluation stage and its scikit-learn
(about a second of every job's start-up on a 2-core CPU; see docs/performance.md).
"""

from __future__ import annotations

import importlib

_MODULE_OF = {
    "make_demo": "data",
    "make_text": "clip",
    "make_visual": "clip",
    "make_windows": "clip",
    "make_manifest": "data",
    "make_noisy_text": "clip",
    "collect_sweeps": "evaluation",
    "compute_metrics": "evaluation",
    "compute_micro": "evaluation",
    "cross_summary": "evaluation",
    "provenance": "evaluation",
    "summarise_results": "evaluation",
    "feature_distance": "features",
    "make_features": "features",
    "make_synthetic_features": "features",
    "summarise_latency": "latency",
    "time_method": "latency",
    "fit_method": "models",
    "score_method": "models",
    "train_method": "models",
    "collect_timings": "timings",
    "variance_analysis": "variance",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
