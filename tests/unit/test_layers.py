"""Layering: stratum/ is the base both daemons share, so nothing in it imports a daemon, the provider or the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UPPER = {"control_plane", "node_daemon", "provider", "cli"}


def upper_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every absolute import of an upper layer, at any depth (lazy imports in functions too)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue  # relative imports stay inside stratum/
        found += [(node.lineno, n) for n in names if n.split(".")[0] in UPPER]
    return sorted(found)


def test_the_checker_sees_top_level_lazy_and_from_imports():
    src = "import os\nimport control_plane.main\ndef f():\n    from node_daemon import agent\nfrom cli.main import main\n" \
          "import providers_of_things\nfrom . import provider\n"
    assert upper_imports(src) == [(2, "control_plane.main"), (4, "node_daemon"), (5, "cli.main")]


def test_stratum_imports_no_daemon_provider_or_cli():
    files = sorted((REPO / "stratum").rglob("*.py"))
    assert len(files) > 10  # the walk found the package
    bad = [f"{f.relative_to(REPO)}:{line} imports {mod}" for f in files for line, mod in upper_imports(f.read_text())]
    assert not bad, "stratum/ is the shared base layer:\n" + "\n".join(bad)
