"""Every relative link in README.md and docs/*.md leads to an existing file and heading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _anchors(page: Path) -> set[str]:
    """The heading anchors GitHub renders for a Markdown page."""
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    headings = re.findall(r"^#{1,6} +(.+?) *$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_relative_links_lead_somewhere(page: Path) -> None:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # an absolute URL: not ours to check offline
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (
            anchor and linked.suffix == ".md" and anchor not in _anchors(linked)
        ):
            broken.append(target)
    assert broken == []


def test_every_proof_docs_security_names_is_a_test_that_exists() -> None:
    """docs/security.md claims a control only with the test that proves it: each named test
    (`tests/….py::test_name`, or a bare `test_name` of a file named before it) must exist."""
    page = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    defined: dict[str, set[str]] = {
        str(path.relative_to(ROOT)): set(re.findall(r"^def (test_\w+)\(", path.read_text(), re.M))
        for path in (ROOT / "tests").rglob("test_*.py")
    }
    everywhere = set().union(*defined.values())
    with_file = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", page)
    bare = set(re.findall(r"`(test_\w+)`", page))
    assert with_file, "docs/security.md names no test"
    missing = [f"{file}::{name}" for file, name in with_file if name not in defined.get(file, ())]
    missing += sorted(name for name in bare if name not in everywhere)
    assert missing == []
