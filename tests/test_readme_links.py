"""Every link in README.md and docs/DESIGN.md leads somewhere: a heading of the same file, or a file in the repo."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "docs" / "DESIGN.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def heading_anchor(heading: str) -> str:
    """GitHub's anchor for a markdown heading: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of every heading outside code blocks."""
    found, in_code = set(), False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(r"#{1,6} ", line):
            found.add(heading_anchor(line.lstrip("#")))
    return found


def test_heading_anchor_follows_github():
    assert heading_anchor(" The tiny organism (tests and benchmarks)") == "the-tiny-organism-tests-and-benchmarks"
    assert heading_anchor(" In five lines: capture, vector, steer, save, load") == (
        "in-five-lines-capture-vector-steer-save-load"
    )
    assert heading_anchor(" Sharing vectors: folders, and GGUF") == "sharing-vectors-folders-and-gguf"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_link_resolves(doc: Path):
    text = doc.read_text(encoding="utf-8")
    known = anchors(text)
    broken = []
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        if target.startswith("#"):
            if target[1:] not in known:
                broken.append(target)
        elif not (doc.parent / target.split("#")[0]).exists():
            broken.append(target)
    assert not broken, f"{doc.name} links to nothing: {broken}"
