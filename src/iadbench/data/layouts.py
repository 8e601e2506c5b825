"""Registry of dataset layouts: ``layout:`` config value -> reader.

A layout answers three questions about the dataset a config entry describes: which categories
are on disk (``discover``, for ``categories: all``), what the samples of some categories are
(``read``, one manifest row per sample), and which files on disk are masks (``mask_files``, so
masks that no sample uses can be reported). A layout may also set ``EXTRA_COLUMNS`` (manifest
columns it adds after the common ones), ``HAS_MASKS = False`` (no pixel masks at all, so anomalous
rows are not "missing" one) and ``attrs(cfg, categories)`` (metadata kept with the manifest).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from iadbench.data import folder, visa, weld
from iadbench.data.btad import BTAD
from iadbench.data.mvtec import MVTEC
from iadbench.errors import ConfigError


class Layout(Protocol):
    def discover(self, cfg: dict) -> list[str]: ...

    def read(self, cfg: dict, categories: list[str]) -> Iterator[dict]: ...

    def mask_files(self, cfg: dict, categories: list[str]) -> list[str]: ...


LAYOUTS: dict[str, Layout] = {
    "mvtec": MVTEC,
    "mpdd": MVTEC,  # MPDD ships the MVTec AD tree unchanged
    "btad": BTAD,
    "visa": visa,
    "folder": folder,
    "weld": weld,
}


def get_layout(name: str) -> Layout:
    """The layout registered under ``name``; an unknown name lists the known ones."""
    if name not in LAYOUTS:
        raise ConfigError(f"unknown layout {name!r} (known: {', '.join(sorted(LAYOUTS))})")
    return LAYOUTS[name]
