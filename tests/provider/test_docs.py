"""Docs and examples stay in step with the schema (pure), and the examples are valid HCL (e2e)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from provider.data_source_node import NodeDataSource
from provider.data_source_nodes import NodesDataSource
from provider.data_source_placement import PlacementDataSource
from provider.nested import NestedAttribute
from provider.provider import provider_schema
from provider.resource_cloud_pool import CloudPoolResource
from provider.resource_join_token import JoinTokenResource
from tests.provider.tfharness import Step, run_steps

ROOT = Path(__file__).resolve().parents[2] / "provider"
DOCS, EXAMPLES = ROOT / "docs", ROOT / "examples"

PAGES = [
    ("index.md", provider_schema(), "provider/provider.tf"),
    ("resources/join_token.md", JoinTokenResource.get_schema(), "resources/stratum_join_token/resource.tf"),
    ("resources/cloud_pool.md", CloudPoolResource.get_schema(), "resources/stratum_cloud_pool/resource.tf"),
    ("data-sources/nodes.md", NodesDataSource.get_schema(), "data-sources/stratum_nodes/data-source.tf"),
    ("data-sources/node.md", NodeDataSource.get_schema(), "data-sources/stratum_node/data-source.tf"),
    ("data-sources/placement.md", PlacementDataSource.get_schema(), "data-sources/stratum_placement/data-source.tf"),
]


def documented(text: str) -> set[str]:
    return set(re.findall(r"^- `([a-z_0-9]+)` \(", text, re.M))


@pytest.mark.parametrize("page,schema,example", PAGES, ids=[p[0] for p in PAGES])
def test_every_attribute_is_documented_and_the_example_is_embedded(page, schema, example):
    text = (DOCS / page).read_text()
    names = {a.name for a in schema.attributes}
    for a in schema.attributes:
        if isinstance(a, NestedAttribute):
            names |= {x.name for x in a.attributes}
    assert documented(text) == names
    for a in schema.attributes:
        if a.sensitive:
            assert f"- `{a.name}` (String, Sensitive)" in text
    assert (EXAMPLES / example).read_text().strip() in text


@pytest.mark.parametrize("resource, page", [("stratum_join_token", "join_token"), ("stratum_cloud_pool", "cloud_pool")])
def test_import_example_is_embedded(resource, page):
    assert (EXAMPLES / f"resources/{resource}/import.sh").read_text().strip() in (DOCS / f"resources/{page}.md").read_text()


@pytest.mark.e2e
def test_examples_validate(make_workspace):
    """Each example is a complete configuration on its own (with the provider block), as a reader copies it."""
    provider_tf = EXAMPLES / "provider" / "provider.tf"
    folders = sorted({e.parent for e in EXAMPLES.rglob("*.tf")} - {provider_tf.parent})
    assert len(folders) >= 6
    for folder in folders:
        ws = make_workspace(f"tf-{folder.name}")
        shutil.copy(provider_tf, ws.dir / "provider.tf")
        for example in folder.glob("*.tf"):
            shutil.copy(example, ws.dir / example.name)
        ws.tf("init", "-no-color", "-input=false")
        ws.initialized = True
        assert "The configuration is valid" in ws.tf("validate", "-no-color").stdout, folder


@pytest.mark.e2e
def test_join_token_example_applies_and_imports(ws, admin):
    example = (EXAMPLES / "resources/stratum_join_token/resource.tf").read_text()
    address, name = (EXAMPLES / "resources/stratum_join_token/import.sh").read_text().split("terraform import ")[1].split()
    run_steps(ws, [Step(ws.provider + example, import_address=address, import_id=name)])
    assert ws.tf("output", "-raw", "north_edge_token").stdout == ws.resources()[address]["token"]
