"""Send a workflow step's log records and uncaught errors to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def logged(path: str | Path) -> Iterator[None]:
    """Log to ``path`` (and stderr); an exception is written there before it propagates."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    if not any(
        isinstance(h, logging.StreamHandler) and h.stream is sys.stderr for h in root.handlers
    ):
        root.addHandler(logging.StreamHandler(sys.stderr))
    try:
        yield
    except Exception:
        logging.getLogger("iadbench").exception("step failed")
        raise
    finally:
        root.removeHandler(handler)
        handler.close()
