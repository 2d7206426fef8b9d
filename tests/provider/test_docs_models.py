"""The stratum_model and stratum_service pages document their schemas (nested attributes included),
embed their examples and have an import section (pure)."""

from __future__ import annotations

import re

import pytest

from provider.nested import NestedAttribute
from provider.resource_app import AppResource
from provider.resource_model import ModelResource
from provider.resource_service import ServiceResource
from tests.provider.test_docs import DOCS, EXAMPLES, documented

PAGES = [
    ("resources/model.md", ModelResource, "resources/stratum_model/resource.tf", "stratum_model"),
    ("resources/service.md", ServiceResource, "resources/stratum_service/resource.tf", "stratum_service"),
    ("resources/app.md", AppResource, "resources/stratum_app/resource.tf", "stratum_app"),
]
IDS = [p[3] for p in PAGES]


def names(attributes) -> set[str]:
    out = set()
    for a in attributes:
        out.add(a.name)
        if isinstance(a, NestedAttribute):
            out |= names(a.attributes)
    return out


def section(text: str, heading: str) -> str:
    """The text under a '### ...' heading (or a 'Nested Schema for `x`' heading), up to the next heading."""
    m = re.search(rf"^### {re.escape(heading)}\n(.*?)(?=^#|\Z)", text, re.M | re.S)
    assert m, f"no section {heading!r}"
    return m.group(1)


@pytest.mark.parametrize("page,resource,example,type_name", PAGES, ids=IDS)
def test_every_attribute_is_documented(page, resource, example, type_name):
    schema = resource.get_schema()
    text = (DOCS / page).read_text()
    assert documented(text) == names(schema.attributes)
    for a in schema.attributes:
        if a.sensitive:
            assert re.search(rf"^- `{a.name}` \([A-Za-z ]+, Sensitive\)", text, re.M), a.name


@pytest.mark.parametrize("page,resource,example,type_name", PAGES, ids=IDS)
def test_attributes_are_under_the_right_heading(page, resource, example, type_name):
    text = (DOCS / page).read_text()
    top = resource.get_schema().attributes
    for heading, pick in (("Required", lambda a: a.required), ("Optional", lambda a: a.optional),
                          ("Read-Only", lambda a: a.computed and not a.optional and not a.required)):
        assert documented(section(text, heading)) == {a.name for a in top if pick(a)}, heading
    for a in top:
        if isinstance(a, NestedAttribute):
            nested = section(text, f"Nested Schema for `{a.name}`")
            assert documented(nested) == {x.name for x in a.attributes}, a.name
            assert f"(#nestedatt--{a.name})" in text and f'<a id="nestedatt--{a.name}"></a>' in text


@pytest.mark.parametrize("page,resource,example,type_name", PAGES, ids=IDS)
def test_the_example_is_embedded(page, resource, example, type_name):
    text = (DOCS / page).read_text()
    tf = (EXAMPLES / example).read_text().strip()
    assert f"## Example Usage\n\n```terraform\n{tf}\n```" in text
    assert f'resource "{type_name}" ' in tf


@pytest.mark.parametrize("page,resource,example,type_name", PAGES, ids=IDS)
def test_import_section(page, resource, example, type_name):
    text = (DOCS / page).read_text()
    assert "\n## Import\n" in text
    m = re.search(rf"^terraform import ({type_name}\.[a-z_0-9]+) ([a-z0-9-]+)$", text.split("\n## Import\n")[1], re.M)
    assert m, "no terraform import command in the Import section"
    address, name = m.groups()
    tf = (EXAMPLES / example).read_text()
    # The import command imports the example's resource, by the name the example gives it.
    assert f'resource "{type_name}" "{address.split(".")[1]}"' in tf
    block = tf.split(f'resource "{type_name}" "{address.split(".")[1]}"')[1].split("\n}\n")[0]
    assert re.search(rf'^\s*name\s*=\s*"{name}"$', block, re.M)


@pytest.mark.parametrize("page,resource,example,type_name", PAGES, ids=IDS)
def test_front_matter_and_title(page, resource, example, type_name):
    text = (DOCS / page).read_text()
    assert text.startswith(f'---\npage_title: "{type_name} Resource - stratum"\n')
    assert f"\n# {type_name} (Resource)\n" in text
    assert "\n## Timeouts\n" in text


def test_model_page_covers_retraining_and_pinning():
    text = (DOCS / "resources/model.md").read_text()
    assert "scores no worse on the new data than" in text
    assert "`pinned_version` rolls back" in text


def test_service_page_covers_the_endpoint_protocol_rolling_updates_and_destroy():
    text = (DOCS / "resources/service.md").read_text()
    assert "`POST <endpoint>/predict`" in text and '{"instances": [{...}]}' in text and '{"predictions": [...]}' in text
    assert "`GET <endpoint>/healthz`" in text
    assert "ready before the old one stops" in text
    assert "replicas are stopped and its ports freed" in text


def test_app_page_covers_kinds_secrets_wiring_and_destroy():
    text = (DOCS / "resources/app.md").read_text()
    assert "$${NAME}" in text and "STRATUM_PORT_<NAME>" in text and "STRATUM_OUTPUT" in text
    assert "never in Terraform state, logs or error messages" in text
    assert "its processes (and every process they started) are stopped when destroy returns" in text
    assert (EXAMPLES / "resources/stratum_app/import.sh").read_text().strip() in text
