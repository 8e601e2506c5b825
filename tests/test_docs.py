"""The docs: generated parameter tables are current, relative links name existing files (no
anchors), the README is short and starts with the two commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from iadbench.docs import REGION, kind_markdown, regions, render

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _generated():
    return [
        (page, name, body)
        for page in PAGES
        for name, body in regions(page.read_text(encoding="utf-8"))
    ]


def test_every_method_page_has_generated_tables():
    from iadbench.methods.kinds import KINDS

    found = {name for _, name, _ in _generated()}
    assert found == set(KINDS), f"kinds without a generated table: {set(KINDS) - found}"


@pytest.mark.parametrize(
    "page,name,body", _generated(), ids=lambda v: v.name if isinstance(v, Path) else None
)
def test_generated_table_is_current(page, name, body):
    assert body == kind_markdown(name), (
        f"{page.relative_to(REPO)}: the table of kind {name!r} is stale; "
        "run `iadbench kinds --update-docs docs`"
    )


def test_stale_table_is_detected(tmp_path):
    fresh = kind_markdown("padim")
    page = (
        f"# x\n\n<!-- kinds:padim -->\n{fresh.replace('`0.01`', '`0.02`')}<!-- /kinds:padim -->\n"
    )
    ((name, body),) = regions(page)
    assert name == "padim" and body != kind_markdown(name)
    assert regions(render(page)) == [("padim", fresh)]

    from iadbench.docs import update_docs

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "p.md").write_text(page)
    assert update_docs(tmp_path) == [tmp_path / "sub" / "p.md"]
    assert update_docs(tmp_path) == []
    assert REGION.search((tmp_path / "sub" / "p.md").read_text())["body"] == fresh


def test_cli_update_docs(tmp_path, capsys):
    from iadbench.cli import main

    (tmp_path / "p.md").write_text("<!-- kinds:patchcore -->\nold\n<!-- /kinds:patchcore -->\n")
    assert main(["kinds", "--update-docs", str(tmp_path)]) in (0, None)
    assert kind_markdown("patchcore") in (tmp_path / "p.md").read_text()
    assert "updated" in capsys.readouterr().out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    bad = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        # anchor-free: a heading renamed on another page would break an anchor silently
        if "#" in target or not (page.parent / target).exists():
            bad.append(target)
    assert not bad, f"{page.relative_to(REPO)}: missing files or anchors in links {bad}"


def test_readme_is_short_and_starts_with_the_two_commands():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    body = [line for line in lines[1:] if line.strip()]
    assert body[0] == "```bash"
    assert body[1].startswith("make run ") and body[2].startswith("make test ")
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
