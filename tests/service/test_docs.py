"""The documentation stands alone: every link leads to a file in the repository or a public URL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_stay_inside_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    # Paths of the machine the docs were written on mean nothing to a reader.
    assert "/work/" not in text and "../shared" not in text
    broken = []
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.is_relative_to(ROOT) or not path.exists():
            broken.append(target)
    assert broken == []


# Citations of notes that never ship with the repository: section marks of a "reference", the
# notes' file names, or their shorthand tags for SDK versions.
PRIVATE_CITATION = re.compile(
    r"reference §|(?:twilio|palabra)-protocol\.md|stack-notes|cluster-notes|\[(?:PY1|PY2|LIVE)\b"
)
SOURCES = sorted(
    [*DOCS, *(ROOT / "src").rglob("*.py"), *(ROOT / "tests").rglob("*.py")],
    key=lambda p: str(p),
)


def test_sources_cite_public_material_only() -> None:
    """Docs, docstrings and comments cite public pages and repositories, not internal notes."""
    this = Path(__file__).resolve()
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in SOURCES
        if path.resolve() != this
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if PRIVATE_CITATION.search(line)
    ]
    assert found == []
