"""Exceptions that carry the offending file, so a user sees what to fix without a traceback hunt."""

from __future__ import annotations


class IadbenchError(Exception):
    """Base class of every error the library raises on bad input."""


class DataError(IadbenchError):
    """A dataset file or layout is unusable (unreadable image, missing mask, size mismatch...)."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(IadbenchError):
    """A configuration entry is invalid or refers to something that does not exist."""


class WeightsError(IadbenchError):
    """Backbone weights cannot be found or do not fit the model."""


class CacheError(IadbenchError):
    """A cached intermediate file does not match what the consumer expects."""
