"""Send a workflow step's log records and uncaught errors to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import re
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

STEP_MARK = re.compile(r"^\S+ \S+ INFO iadbench\.step: (start|end) (\d+\.\d+)$", re.MULTILINE)
USAGE_MARK = re.compile(r"^\S+ \S+ INFO iadbench\.step: usage (\d+\.\d+) (\d+\.\d+)$", re.MULTILINE)


@contextlib.contextmanager
def logged(path: str | Path) -> Iterator[None]:
    """Log to ``path`` (and stderr); an exception is written there before it propagates.

    The file opens with a ``start`` and closes with an ``end`` line carrying Unix time with
    microseconds, so when the step did its work can be read back (see ``step_interval``).
    Before ``end``, a ``usage`` line gives this process's CPU seconds and peak resident memory
    (``step_usage``): a job run in a warm fork (``iadbench.warm``) is measured there, where
    Snakemake's benchmark only sees the waiting job process.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    if not any(
        isinstance(h, logging.StreamHandler) and h.stream is sys.stderr for h in root.handlers
    ):
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(console)
    # The timing marks go to the log file only; on the console they would be noise.
    step = logging.getLogger("iadbench.step")
    step.propagate = False
    step.setLevel(logging.INFO)
    step.handlers = [handler]
    step.info("start %.6f", time.time())
    try:
        yield
    except Exception:
        logging.getLogger("iadbench").exception("step failed")
        raise
    finally:
        step.info("usage %.3f %.1f", *_usage())
        step.info("end %.6f", time.time())
        step.handlers = []
        root.removeHandler(handler)
        handler.close()


def step_interval(path: str | Path) -> tuple[float, float]:
    """(start, end) Unix times of the step that wrote the log at ``path``."""
    marks = dict((kind, float(t)) for kind, t in STEP_MARK.findall(Path(path).read_text()))
    return marks["start"], marks["end"]


def _usage() -> tuple[float, float]:
    """CPU seconds and peak RSS in MB of this process and its finished children."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return cpu, max(own.ru_maxrss, children.ru_maxrss) / 1024  # Linux reports kilobytes


def step_usage(path: str | Path) -> tuple[float, float] | None:
    """(CPU seconds, peak RSS MB) the step that wrote the log at ``path`` recorded, if any."""
    found = USAGE_MARK.findall(Path(path).read_text())
    return (float(found[-1][0]), float(found[-1][1])) if found else None
