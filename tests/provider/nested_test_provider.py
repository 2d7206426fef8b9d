"""A tiny provider used only by test_e2e_nested.py: nested attributes of every nesting through real Terraform.

Terraform starts it through a launcher the test writes into the implied local
mirror (registry.terraform.io/stratum/nestedtest). Its resource keeps no
server-side state: what Terraform stores is all there is.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tf.iface import Provider, Resource  # noqa: E402
from tf.schema import Attribute, Schema  # noqa: E402
from tf.types import List, Number, String, Unknown  # noqa: E402

from provider.nested import NestedAttribute, Nesting  # noqa: E402


def _placements(state: dict) -> list[dict]:
    req = state.get("requirements") or {}
    return [{"node": f"node-{tier}", "cpu": req.get("cpu")} for tier in (req.get("tiers") or ["any"])]


class Thing(Resource):
    def __init__(self, provider):
        self.provider = provider

    @classmethod
    def get_name(cls):
        return "thing"

    @classmethod
    def get_schema(cls):
        return Schema(version=0, attributes=[
            Attribute("id", String(), computed=True),
            Attribute("name", String(), required=True, requires_replace=True),
            NestedAttribute("requirements", [
                Attribute("cpu", Number(), optional=True),
                Attribute("memory_mb", Number(), optional=True),
                Attribute("arch", String(), optional=True),
                Attribute("tiers", List(String()), optional=True),
            ], Nesting.SINGLE, optional=True),
            NestedAttribute("ports", [
                Attribute("port", Number(), required=True),
                Attribute("protocol", String(), optional=True),
            ], Nesting.SET, optional=True),
            NestedAttribute("env", [Attribute("value", String(), required=True)], Nesting.MAP, optional=True),
            NestedAttribute("placements", [
                Attribute("node", String(), computed=True),
                Attribute("cpu", Number(), computed=True),
            ], Nesting.LIST, computed=True),
        ])

    def plan(self, ctx, current, planned):
        if current is not None and "requirements" in ctx.changed_fields:
            planned["placements"] = Unknown
        return planned

    def create(self, ctx, planned):
        return {**planned, "id": planned["name"], "placements": _placements(planned)}

    def read(self, ctx, current):
        return current

    def update(self, ctx, current, planned):
        return {**planned, "placements": _placements(planned)}

    def delete(self, ctx, current):
        return None


class NestedTestProvider(Provider):
    def get_model_prefix(self):
        return "nestedtest_"

    def full_name(self):
        return "registry.terraform.io/stratum/nestedtest"

    def get_provider_schema(self, diags):
        return Schema(version=0, attributes=[])

    def validate_config(self, diags, config):
        pass

    def configure_provider(self, diags, config):
        pass

    def get_data_sources(self):
        return []

    def get_resources(self):
        return [Thing]


if __name__ == "__main__":
    import tf.provider
    from tf.runner import run_provider

    from provider.servicer import StratumServicer

    tf.provider.ProviderServicer = StratumServicer
    run_provider(NestedTestProvider(), sys.argv)
