"""The README and docs/ stand alone: every link and path they name is in the repository, none
points outside it or at a tracker, the README's figures are the bench READMEs' own, the set-up is
two commands, and the HCL in docs/ is a configuration terraform validates with the provider."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TOP = {p.name for p in REPO.iterdir() if p.is_dir() and not p.name.startswith(".")}
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_docs_exist_and_the_readme_links_them():
    names = {p.name for p in PAGES}
    assert {"architecture.md", "names.md", "placement.md", "reconcile.md", "apps.md", "rules.md"} <= names
    readme = (REPO / "README.md").read_text()
    for page in PAGES[1:]:
        assert f"(docs/{page.name}" in readme or page.name == "README.md", page.name


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_link_and_path_is_inside_the_repository(page):
    text = page.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.is_relative_to(REPO) and dest.exists(), f"{page.name}: link {target} leads nowhere in the repo"
        if anchor and dest.suffix == ".md":
            headings = {slug(h) for h in re.findall(r"^#+ (.+)$", dest.read_text(), re.M)}
            assert anchor in headings, f"{page.name}: no heading #{anchor} in {path or page.name}"
    for quoted in re.findall(r"`([^`\s]+)`", text):
        first = quoted.split("/")[0]
        if "/" in quoted and first in TOP and not re.search(r"[<>*]", quoted):
            assert (REPO / quoted.split("#")[0]).exists(), f"{page.name}: `{quoted}` is not in the repository"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_nothing_points_outside_the_repository_or_at_an_issue(page):
    text = page.read_text()
    for pattern in (r"\.\./shared", r"DESIGN\.md", r"/work/", r"\bissues? #?\d+", r"(?<![\w&])#\d+\b"):
        found = re.search(pattern, text, re.I)
        assert not found, f"{page.name}: {found.group(0)!r}"


def test_the_readme_figures_are_the_bench_readmes_own():
    """A bullet of the README's "Measured" section that quotes figures links the bench README they
    come from, and every number in it is in that README: a figure re-measured there and not here fails."""
    measured = section((REPO / "README.md").read_text(), "Measured")
    bullets = re.findall(r"^- (.+?)(?=^- |^<!--|\Z)", measured, re.M | re.S)
    assert len(bullets) >= 6
    for bullet in bullets:
        sources = re.findall(r"\]\((bench/\w+/README\.md)\)", bullet)
        figures = {n.rstrip(",") for n in NUMBER.findall(re.sub(r"\]\([^)]*\)", "]", bullet))}
        if not figures:
            continue
        assert len(sources) == 1, f"figures without their bench README: {bullet[:80]}"
        bench = (REPO / sources[0]).read_text()
        in_bench = {n.rstrip(",") for n in NUMBER.findall(bench)}
        assert figures <= in_bench, f"{sources[0]} has none of {sorted(figures - in_bench)}: {bullet[:80]}"


def test_the_set_up_is_two_commands():
    setup = section((REPO / "README.md").read_text(), "Set-up")
    commands = re.findall(r"^    (\S.*)$", setup, re.M)
    assert commands == ["./scripts/demo", "./scripts/test"]
    for cmd in commands:
        assert (REPO / cmd).exists()


def hcl_blocks() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        for i, block in enumerate(re.findall(r"```hcl\n(.*?)```", page.read_text(), re.S)):
            out.append((f"{page.name}[{i}]", block))
    return out


@pytest.mark.e2e
@pytest.mark.parametrize("where, block", hcl_blocks(), ids=[w for w, _ in hcl_blocks()])
def test_the_hcl_in_the_docs_validates_with_the_provider(make_workspace, where, block):
    assert "required_providers" in block, f"{where}: a block users copy is a whole configuration"
    ws = make_workspace("docs")
    (ws.dir / "main.tf").write_text(block)
    ws.tf("init", "-no-color", "-input=false")
    ws.initialized = True
    assert "The configuration is valid" in ws.tf("validate", "-no-color").stdout, where
    assert ws.tf("fmt", "-check", "-no-color", check=False).rc == 0, f"{where}: not in terraform fmt's layout"
