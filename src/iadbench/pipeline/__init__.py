"""One function per workflow step: read the step's input files, call the library, write outputs.

The Snakemake scripts and the ``iadbench`` CLI both call these, so every rule can also be run
(and debugged) by hand without Snakemake. One small module per stage; none holds maths. Steps
that need PyTorch import it inside the function: each Snakemake job is a fresh process, and the
data and metrics jobs should not pay seconds of deep-learning imports they never use.
"""

from iadbench.pipeline.data import make_demo, make_manifest
from iadbench.pipeline.evaluation import (
    collect_sweeps,
    compute_metrics,
    cross_summary,
    provenance,
    summarise_results,
)
from iadbench.pipeline.features import feature_distance, make_features
from iadbench.pipeline.latency import summarise_latency, time_method
from iadbench.pipeline.models import fit_method, score_method, train_method

__all__ = [
    "collect_sweeps",
    "compute_metrics",
    "cross_summary",
    "feature_distance",
    "fit_method",
    "make_demo",
    "make_features",
    "make_manifest",
    "provenance",
    "score_method",
    "summarise_latency",
    "summarise_results",
    "time_method",
    "train_method",
]
