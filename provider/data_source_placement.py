"""Data source `stratum_placement`: a what-if. Where would replicas with these requirements go
now, and why not elsewhere? Nothing is placed or reserved; the answer reflects the ready nodes
and the services placed when it is read (PlaceWhatIf)."""

from __future__ import annotations

from typing import Optional

from tf.iface import Config, DataSource, ReadDataContext, State
from tf.schema import Attribute, Schema
from tf.types import Bool, List, String

from provider.client import ApiError
from provider.common import client_of
from provider.nested import NestedAttribute, Nesting, Number
from provider.resource_service import PREFERENCE_ATTRIBUTES, REQUIREMENT_ATTRIBUTES, preferences_of, requirements_of
from stratum.v1 import models_pb2 as m


class PlacementDataSource(DataSource):
    def __init__(self, provider):
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return "placement"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=0,
            description="What-if placement: where replicas with these requirements would go, and why every other node was passed over.",
            attributes=[
                NestedAttribute("requirements", REQUIREMENT_ATTRIBUTES, Nesting.SINGLE, optional=True,
                                description="What each replica needs (as in `stratum_service`)."),
                Attribute("replicas", Number(), optional=True, description="How many replicas (default 1)."),
                NestedAttribute("placement", PREFERENCE_ATTRIBUTES, Nesting.SINGLE, optional=True,
                                description="Spread and preferences (as in `stratum_service`)."),
                Attribute("model", String(), optional=True, description="A model whose measured memory applies when `requirements.memory_mb` is unset."),
                Attribute("fits", Bool(), computed=True, description="Whether every replica would find a node."),
                NestedAttribute("placements", [
                    Attribute("node_id", String(), computed=True, description="Node id."),
                    Attribute("node_name", String(), computed=True, description="Node name."),
                    Attribute("replicas", Number(), computed=True, description="Replicas it would take."),
                ], Nesting.LIST, computed=True, description="Where the replicas would go (empty when they do not fit)."),
                NestedAttribute("rejected", [
                    Attribute("node_name", String(), computed=True, description="Node name."),
                    Attribute("reason", String(), computed=True, description="Why it would take no replica."),
                ], Nesting.LIST, computed=True, description="Every other node, with the reason."),
                Attribute("violations", List(String()), computed=True, description="Requirements no ready node meets, with the closest candidates."),
            ],
        )

    def read(self, ctx: ReadDataContext, config: Config) -> Optional[State]:
        client = client_of(self.provider, ctx.diagnostics)
        if client is None:
            return None
        query = m.PlacementQuery(requirements=requirements_of(config.get("requirements")),
                                 replicas=int(config.get("replicas") or 0), placement=preferences_of(config.get("placement")),
                                 model=config.get("model") or "")
        try:
            answer = client.call("PlaceWhatIf", query, action="asking where the replicas would go",
                                 attributes=("requirements", "replicas", "placement", "model"))
        except ApiError as e:
            e.report(ctx.diagnostics)
            return None
        return {
            **{k: config.get(k) for k in ("requirements", "replicas", "placement", "model")},
            "fits": bool(answer.placements),
            "placements": [{"node_id": p.node_id, "node_name": p.node_name, "replicas": p.replicas} for p in answer.placements],
            "rejected": [{"node_name": r.node_name, "reason": r.reason} for r in answer.rejected],
            "violations": list(answer.violations),
        }
