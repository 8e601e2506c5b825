"""Progress of long loops that people can see: a log line every ``every`` seconds, a bar on a TTY.

A job's log file is where someone looking at a running (or a hung) cluster job looks, and tqdm's
bar never reaches it (tqdm is quiet when stderr is not a terminal, and a bar in a log file would
be noise). :func:`progress` wraps a loop like tqdm does (iterate it, or ``update(n)`` by hand)
and also logs ``<desc>: <done>/<total> <unit> (<pct>%), <rate> <unit>/s, ETA <time>`` through
:mod:`logging` at most every ``every`` seconds (default 30) and once at the end, so the job's log
file (see :func:`iadbench.logs.logged`) and, for local runs, the terminal get it. The bar is
shown only when stderr is a terminal.

Lines are written when the loop advances (``update``), so a single step longer than ``every``
delays the next line until it ends; every loop this wraps takes steps of seconds at most.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

DEFAULT_EVERY = 30.0

log = logging.getLogger("iadbench.progress")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """A loop's progress: ``update(n)``, iteration, ``set_postfix`` and ``close`` like tqdm.

    ``clock`` (seconds, monotonic) and ``bar`` (None: tqdm when stderr is a terminal; False:
    never) are there for tests. ``disable=True`` turns off both the bar and the log lines.
    """

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        initial: int = 0,
        every: float = DEFAULT_EVERY,
        disable: bool | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        bar: Any = None,
    ) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.initial = self.done = int(initial)
        self.every = float(every)
        self.disabled = disable is True
        self.log = logger or log
        self.clock = clock
        self.started = self.last = clock()
        self.postfix = ""
        self.closed = False
        if bar is None and not self.disabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False)
        self.bar = bar or None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close(failed=exc[0] is not None)

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("progress() without an iterable: call update(n) instead")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        self.done += int(n)
        if self.bar is not None:
            self.bar.update(n)
        if not self.disabled and self.clock() - self.last >= self.every:
            self.log.info("%s", self.line())
            self.last = self.clock()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())
        if self.bar is not None:
            self.bar.set_postfix(**values)

    def line(self, final: bool = False) -> str:
        """``desc: done/total unit (pct%), rate unit/s, ETA m:ss`` (or ``in m:ss`` at the end)."""
        elapsed = self.clock() - self.started
        steps = self.done - self.initial
        rate = steps / elapsed if elapsed > 0 else 0.0
        count = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
        text = f"{self.desc}: {count} {self.unit}"
        if self.total:
            text += f" ({100 * self.done / self.total:.0f}%)"
        text += f", {rate:.0f}" if rate >= 100 else f", {rate:.3g}"
        text += f" {self.unit}/s"
        if final:
            text += f", in {_duration(elapsed)}"
        elif self.total is not None and rate > 0:
            text += f", ETA {_duration((self.total - self.done) / rate)}"
        return text + (f" [{self.postfix}]" if self.postfix else "")

    def close(self, failed: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        if not self.disabled:
            self.log.info("%s%s", self.line(final=True), " (stopped)" if failed else "")


def progress(iterable: Iterable | None = None, **kwargs: Any) -> Progress:
    """:class:`Progress` over ``iterable`` (or driven by ``update``); see the module docstring."""
    return Progress(iterable, **kwargs)
