"""iadbench: a reproducible, incremental benchmark pipeline for visual anomaly detection."""

__version__ = "0.1.0"
