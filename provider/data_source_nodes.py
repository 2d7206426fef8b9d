"""Data source `stratum_nodes`: the nodes matching every given filter."""

from __future__ import annotations

import hashlib
import json
from typing import Optional

from tf.iface import Config, DataSource, ReadDataContext, State
from tf.schema import Attribute, Schema
from tf.types import Bool, List, Map, String

from provider.client import ApiError
from provider.common import client_of, node_summary
from provider.nested import NestedAttribute, Nesting, Number
from stratum.v1 import control_plane_pb2

FILTERS = ("tier", "labels", "min_cpu", "min_memory_mb", "gpu", "state")


def node_attributes() -> list[Attribute]:
    """The exported fields of one node (all computed); stratum_node reuses them."""
    return [
        Attribute("id", String(), computed=True, description="Stable node id (`node-…`)."),
        Attribute("name", String(), computed=True, description="Unique node name."),
        Attribute("tier", String(), computed=True, description="`edge`, `fog` or `cloud`."),
        Attribute("labels", Map(String()), computed=True, description="Operator labels."),
        Attribute("state", String(), computed=True, description="`ready` while heartbeats arrive, else `down`."),
        Attribute("cpu_cores", Number(), computed=True, description="Logical CPUs usable by the daemon."),
        Attribute("memory_mb", Number(), computed=True, description="Total memory in MiB."),
        Attribute("arch", String(), computed=True, description="Machine architecture, e.g. `x86_64`."),
        Attribute("gpus", Number(), computed=True, description="Number of GPUs."),
        Attribute("addresses", List(String()), computed=True, description="Non-loopback IP addresses."),
    ]


class NodesDataSource(DataSource):
    def __init__(self, provider):
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return "nodes"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=0,
            description="Nodes known to the control plane that match every given filter, ordered by name.",
            attributes=[
                Attribute("id", String(), computed=True, description="Identifier of this query (derived from the filters)."),
                Attribute("tier", String(), optional=True, description="Only nodes of this tier (`edge`, `fog`, `cloud`)."),
                Attribute("labels", Map(String()), optional=True, description="Only nodes carrying all of these labels."),
                Attribute("min_cpu", Number(), optional=True, description="Only nodes with at least this many CPU cores."),
                Attribute("min_memory_mb", Number(), optional=True, description="Only nodes with at least this much memory (MiB)."),
                Attribute("gpu", Bool(), optional=True, description="`true`: only nodes with a GPU; `false`: only nodes without."),
                Attribute("state", String(), optional=True, description="Only nodes in this state (`ready`, `down`)."),
                NestedAttribute("nodes", node_attributes(), Nesting.LIST, computed=True, description="The matching nodes."),
            ],
        )

    def read(self, ctx: ReadDataContext, config: Config) -> Optional[State]:
        client = client_of(self.provider, ctx.diagnostics)
        if client is None:
            return None
        min_memory = config.get("min_memory_mb")
        if min_memory is not None and (min_memory < 0 or min_memory != int(min_memory)):
            ctx.diagnostics.add_error("Invalid min_memory_mb", f"min_memory_mb must be a whole number of MiB, not {min_memory}.", path=["min_memory_mb"])
            return None

        request = control_plane_pb2.ListNodesRequest(
            tier=config.get("tier") or "",
            labels=config.get("labels") or {},
            min_cpu=config.get("min_cpu") or 0,
            min_memory_mb=int(min_memory or 0),
            state=config.get("state") or "",
        )
        if config.get("gpu") is not None:
            request.gpu = config["gpu"]
        try:
            response = client.call("ListNodes", request, action="listing nodes", attributes=FILTERS)
        except ApiError as e:
            e.report(ctx.diagnostics)
            return None

        filters = {k: config.get(k) for k in FILTERS}
        digest = hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:16]
        return {**filters, "id": f"nodes-{digest}", "nodes": [node_summary(n) for n in response.nodes]}
