"""Registry of dataset layout readers: ``layout:`` config value -> row generator."""

from __future__ import annotations

from iadbench.data.mvtec import read_mvtec

LAYOUTS = {
    "mvtec": read_mvtec,
}
