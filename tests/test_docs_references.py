"""References stay inside the repository: a reader of a clone can follow every one.

Code, chart files and docs cite the upstream contract as ``docs/upstream-contract.md#<anchor>``;
no file may cite a document that is not in the checkout (the old out-of-repo spec and its
section numbers), and every cited anchor must be a heading id of that page.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = Path("docs/upstream-contract.md")
SELF = Path(__file__).resolve().relative_to(ROOT)
SKIP_DIRS = {".git", ".venv", "build", "node_modules", "__pycache__", ".mypy_cache",
             ".ruff_cache", ".pytest_cache", ".hypothesis"}  # fmt: skip
MAX_BYTES = 2 << 20  # a text file larger than this is data, not prose

# Documents outside the checkout: the spec directory beside it and its files by name.
OUTSIDE = re.compile(
    r"\.\./shared\b|/work/shared\b|(?<![\w-])contract\.md\b"
    r"|upstream-openapi-subset\.yaml|kubernetes-deployment-guide\.md"
)
# "contract 4.2", "contract section 4", "decision D1", "contract D7": the old numbering.
SECTION_NUMBER = re.compile(r"\b(?:contract|decision) (?:section )?D?\d+(?:\.\d+)?")
# A deliberate difference by number ("D3") means something only next to the page path.
DIFFERENCE = re.compile(r"\bD\d{1,2}\b")
CITED_ANCHOR = re.compile(r"upstream-contract\.md#([A-Za-z0-9_-]+)")
SAME_PAGE_ANCHOR = re.compile(r"\]\(#([A-Za-z0-9_-]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$")
EXPLICIT_ID = re.compile(r"\{\s*#([A-Za-z0-9_-]+)[^}]*\}\s*$")


def text_files(root: Path) -> Iterator[tuple[Path, str]]:
    """Every text file of the checkout (relative path, content), bounded in size."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")
        )
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_symlink() or path.stat().st_size > MAX_BYTES:
                continue
            try:
                yield path.relative_to(root), path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue


def page_anchors(markdown: str) -> set[str]:
    """Heading ids as the site builds them: an explicit ``{#id}``, else the toc slug."""
    ids = set()
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if fenced or not (m := HEADING.match(line)):
            continue
        title = m.group(1)
        if explicit := EXPLICIT_ID.search(title):
            ids.add(explicit.group(1))
        else:
            slug = re.sub(r"[^\w\s-]", "", title.replace("`", "")).strip().lower()
            ids.add(re.sub(r"[-\s]+", "-", slug))
    return ids


def reference_problems(root: Path) -> list[str]:
    """One line per broken reference: ``path:line: what is wrong``."""
    page = root / PAGE
    anchors = page_anchors(page.read_text()) if page.is_file() else set()
    problems = []
    for rel, text in text_files(root):
        if rel == SELF:  # this module quotes the forms it forbids
            continue
        for number, line in enumerate(text.splitlines(), 1):
            where = f"{rel}:{number}"
            if m := OUTSIDE.search(line):
                problems.append(f"{where}: cites {m.group(0)!r}, a document outside the repository")
            elif m := SECTION_NUMBER.search(line):
                problems.append(f"{where}: cites {m.group(0)!r}; cite {PAGE}#<anchor> instead")
            elif rel != PAGE and DIFFERENCE.search(line) and "upstream-contract.md" not in line:
                problems.append(f"{where}: names a difference without {PAGE}#d<n> on the line")
            cited = CITED_ANCHOR.findall(line)
            if rel == PAGE:
                cited += SAME_PAGE_ANCHOR.findall(line)
            problems += [
                f"{where}: #{a} is not a heading id of {PAGE}" for a in cited if a not in anchors
            ]
    return problems


def test_every_reference_resolves_inside_the_repository() -> None:
    problems = reference_problems(ROOT)
    assert not problems, "\n".join(problems)


def test_the_page_anchors_each_difference_and_is_published() -> None:
    anchors = page_anchors((ROOT / PAGE).read_text())
    assert {f"d{n}" for n in range(1, 9)} <= anchors
    assert "upstream-contract.md" in (ROOT / "mkdocs.yml").read_text()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("# (contract 4.2)", "cites 'contract 4"),
        ("x (decision D1) y", "cites 'decision D"),
        ("see `../shared/spec/contract.md`", "outside the repository"),
        ("a D3 mention", "names a difference"),
        ("(docs/upstream-contract.md#no-such-heading)", "#no-such-heading is not a heading id"),
    ],
)
def test_each_kind_of_broken_reference_is_reported(
    tmp_path: Path, line: str, expected: str
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / PAGE).write_text("# Title\n\n## D1: a difference {#d1}\n")
    (tmp_path / "module.py").write_text(f"{line}\n# fine (docs/upstream-contract.md#d1)\n")
    problems = reference_problems(tmp_path)
    assert len(problems) == 1 and expected in problems[0], problems


def test_the_readme_claims_file_urls_only_when_the_site_links_to_files() -> None:
    """mkdocs links to folders unless ``use_directory_urls: false``; from ``file://`` a folder
    link opens a listing, so the README may not promise browsing from disk."""
    import yaml

    config = yaml.safe_load(
        re.sub(r"!!python/\S+", "", (ROOT / "mkdocs.yml").read_text())
    )  # tags the safe loader does not know
    links_to_files = config.get("use_directory_urls") is False
    promises = re.search(r"open from\s+`?file://", (ROOT / "README.md").read_text())
    assert links_to_files or not promises, (
        "README promises file:// browsing of a folder-linked site"
    )
