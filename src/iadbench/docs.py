"""Generated regions of the Markdown docs.

A region is ``<!-- kinds:NAME -->`` ... ``<!-- /kinds:NAME -->``; its body is the output of
``iadbench kinds --markdown --kind NAME`` (the kind's parameter table, made from the
declarations in its ``params.py``). ``iadbench kinds --update-docs docs`` rewrites every region
under a folder; ``tests/test_docs.py`` fails when a region differs from fresh output.
"""

from __future__ import annotations

import re
from pathlib import Path

REGION = re.compile(
    r"(?P<open><!-- kinds:(?P<name>[\w.:]+) -->\n)(?P<body>.*?)"
    r"(?P<close><!-- /kinds:(?P=name) -->)",
    re.S,
)


def kind_markdown(name: str) -> str:
    """The parameter table of one kind, as ``iadbench kinds --markdown --kind NAME`` prints it."""
    from iadbench.methods.kinds import params_class

    return params_class(name).markdown(name).rstrip("\n") + "\n"


def regions(text: str) -> list[tuple[str, str]]:
    """(kind name, current body) of every generated region in a Markdown text."""
    return [(m["name"], m["body"]) for m in REGION.finditer(text)]


def render(text: str) -> str:
    """``text`` with every generated region's body replaced by fresh output."""
    return REGION.sub(lambda m: m["open"] + kind_markdown(m["name"]) + m["close"], text)


def update_docs(root: str | Path) -> list[Path]:
    """Rewrite the generated regions of every ``*.md`` under ``root``; return the changed files."""
    changed = []
    for path in sorted(Path(root).rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        new = render(text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed
