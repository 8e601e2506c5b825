"""A self-contained HTML page: sections of tables and figures, PNGs inlined as data URIs.

The page embeds every image so that ``report.html`` can be mailed or archived on its own; the
same PNG bytes are also written to a folder beside it by :mod:`iadbench.report.build`.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;
color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:.85em}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f0f0f0}tr.ref td{background:#f7f7ff}tr.warn td{background:#fff6e6}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}
figure{display:inline-block;vertical-align:top;margin:.5em 1em .5em 0}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}.note{background:#fff6e6;border-left:4px solid #e0a030;
padding:.4em .8em}nav ul{columns:2}code{font-size:.85em;word-break:break-all}
"""


@dataclass(frozen=True)
class Image:
    """One figure: its file name in the PNG folder, its bytes and its caption."""

    name: str
    png: bytes
    caption: str


@dataclass
class Section:
    """A titled part of the page holding HTML blocks and figures in order."""

    title: str
    blocks: list[str | Image] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return slug(self.title)

    def add(self, block: str | Image) -> None:
        self.blocks.append(block)


@dataclass
class Page:
    """The whole report; figure names are made unique as they are added."""

    title: str
    intro: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    def section(self, title: str) -> Section:
        sec = Section(title)
        self.sections.append(sec)
        return sec

    @property
    def images(self) -> list[Image]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Image)]

    def image(self, stem: str, png: bytes, caption: str) -> Image:
        """An :class:`Image` named ``<slug(stem)>.png``, suffixed if that name is taken."""
        taken = {img.name for img in self.images}
        name, n = f"{slug(stem)}.png", 1
        while name in taken:
            n += 1
            name = f"{slug(stem)}-{n}.png"
        return Image(name, png, caption)


def slug(text: str) -> str:
    """A file- and anchor-safe name: lower case, runs of other characters become ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def esc(value: object) -> str:
    return html.escape(str(value))


def paragraph(text: str, note: bool = False) -> str:
    """A paragraph of plain text (escaped); ``note`` highlights a caveat."""
    return f'<p class="note">{esc(text)}</p>' if note else f"<p>{esc(text)}</p>"


def bullet_list(items: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def table(
    frame: pd.DataFrame,
    caption: str = "",
    numeric: Iterable[str] = (),
    row_classes: Iterable[str] | None = None,
) -> str:
    """An HTML table of already formatted cells; ``numeric`` columns are right-aligned."""
    numeric = set(numeric)
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    classes = list(row_classes) if row_classes is not None else [""] * len(frame)
    body = []
    for cls, (_, row) in zip(classes, frame.iterrows()):
        cells = "".join(
            f'<td class="num">{esc(v)}</td>' if c in numeric else f"<td>{esc(v)}</td>"
            for c, v in row.items()
        )
        body.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(img: Image) -> str:
    data = base64.b64encode(img.png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{esc(img.caption)}" '
        f'data-file="{esc(img.name)}"><figcaption>{esc(img.caption)} '
        f"(<code>{esc(img.name)}</code>)</figcaption></figure>"
    )


def render(page: Page) -> str:
    """The complete HTML document."""
    toc = "".join(f'<li><a href="#{s.anchor}">{esc(s.title)}</a></li>' for s in page.sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(page.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{esc(page.title)}</h1>",
        *page.intro,
        f"<nav><ul>{toc}</ul></nav>",
    ]
    for sec in page.sections:
        parts.append(f'<section id="{sec.anchor}"><h2>{esc(sec.title)}</h2>')
        parts.extend(_figure(b) if isinstance(b, Image) else b for b in sec.blocks)
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
