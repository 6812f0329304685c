"""The docs stay true: the command-line reference is the parser's own help, the README stays short,
and every relative link in the README, docs/ and the baselines' notes reaches a file and heading."""

import re
from pathlib import Path

import pytest

from harness.cli import reference
from harness.settings import REPO_ROOT

PAGES = [
    REPO_ROOT / "README.md",
    *sorted((REPO_ROOT / "docs").glob("*.md")),
    *sorted((REPO_ROOT / "baselines").glob("*/NOTES.md")),
]


def test_the_command_line_reference_is_the_parsers_help():
    assert (REPO_ROOT / "docs" / "cli.md").read_text() == reference.markdown(), (
        "docs/cli.md is out of date: run `make docs`"
    )


def test_the_readme_is_what_a_newcomer_reads_first():
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    assert len(lines) < 250
    text = "\n".join(lines)
    assert text.index("make bench") < text.index("## ") + 2000 and "make test" in text  # the two commands come first
    for page in (REPO_ROOT / "docs").glob("*.md"):
        assert f"docs/{page.name}" in text, f"the README does not point at docs/{page.name}"


def _prose(page: Path, inline_code: bool = False) -> list[str]:
    """The page's lines outside fenced code blocks, and without inline code unless asked (code holds no links)."""
    lines, fenced = [], False
    for line in page.read_text().splitlines():
        if re.match(r"^\s*(```|~~~)", line):
            fenced = not fenced
            continue
        lines.append("" if fenced else line if inline_code else re.sub(r"`[^`]*`", "", line))
    return lines


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but - and _ dropped, spaces as -, repeats numbered."""
    seen: dict[str, int] = {}
    for line in _prose(page, inline_code=True):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1)).lower()).replace(
                " ", "-"
            )
            seen[slug] = seen.get(slug, -1) + 1
            yield slug if seen[slug] == 0 else f"{slug}-{seen[slug]}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_reaches_its_file_and_heading(page):
    broken = []
    for number, line in enumerate(_prose(page), 1):
        for url in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line):
            if re.match(r"^[a-z]+:", url) or url.startswith("//"):
                continue
            target, _, anchor = url.partition("#")
            path = (page.parent / target).resolve() if target else page
            if not path.exists():
                broken.append(f"{page.name}:{number}: {url} (no such file)")
            elif anchor and anchor not in set(_anchors(path)):
                broken.append(f"{page.name}:{number}: {url} (no such heading)")
    assert not broken, "; ".join(broken)
