"""Data source `stratum_node`: one node, by id or by name."""

from __future__ import annotations

from typing import Optional

import grpc
from tf.iface import Config, DataSource, ReadDataContext, State
from tf.schema import Attribute, Schema
from tf.types import List, String, Unknown
from tf.utils import Diagnostics

from provider.client import ApiError
from provider.common import client_of, node_summary
from provider.data_source_nodes import node_attributes
from provider.nested import Number
from stratum.v1 import control_plane_pb2


class NodeDataSource(DataSource):
    def __init__(self, provider):
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return "node"

    @classmethod
    def get_schema(cls) -> Schema:
        attrs = {a.name: a for a in node_attributes()}
        # id and name select the node: one of them is given, the other is filled in.
        for key in ("id", "name"):
            attrs[key].optional = True
        attrs["id"].description = "Node id (`node-…`). Give this or `name`."
        attrs["name"].description = "Node name. Give this or `id`."
        return Schema(
            version=0,
            description="One node known to the control plane, with its capabilities.",
            attributes=[
                *attrs.values(),
                Attribute("cpu_model", String(), computed=True, description="CPU model string."),
                Attribute("os", String(), computed=True, description="Operating system family, e.g. `linux`."),
                Attribute("disk_mb", Number(), computed=True, description="Size of the file system holding the daemon's data dir, MiB."),
                Attribute("gpu_models", List(String()), computed=True, description="Product name of each GPU, in index order."),
            ],
        )

    def validate(self, diags: Diagnostics, type_name: str, config: Config):
        super().validate(diags, type_name, config)
        given = [k for k in ("id", "name") if config.get(k) is not None]
        if not given:
            diags.add_error("Missing node id or name", "stratum_node needs `id` or `name`.")
        elif len(given) == 2 and Unknown not in (config["id"], config["name"]):
            diags.add_error("Conflicting node id and name", "Give `id` or `name`, not both.", path=["name"])

    def read(self, ctx: ReadDataContext, config: Config) -> Optional[State]:
        client = client_of(self.provider, ctx.diagnostics)
        if client is None:
            return None
        key = "id" if config.get("id") is not None else "name"
        wanted = config[key]
        try:
            node = client.call("GetNode", control_plane_pb2.GetNodeRequest(id_or_name=wanted), action=f"reading node {wanted!r}", attributes=())
        except ApiError as e:
            if e.code == grpc.StatusCode.NOT_FOUND:
                ctx.diagnostics.add_error("Node not found", f"The control plane knows no node with {key} {wanted!r}.", path=[key])
            else:
                e.report(ctx.diagnostics)
            return None
        if getattr(node, key) != wanted:
            # GetNode matches an id or a name; a name that happens to equal another node's id is not what was asked.
            ctx.diagnostics.add_error("Node not found", f"The control plane knows no node with {key} {wanted!r}.", path=[key])
            return None

        caps = node.capabilities
        return {
            **node_summary(node),
            "cpu_model": caps.cpu_model,
            "os": caps.os,
            "disk_mb": caps.disk_mb,
            "gpu_models": [g.model for g in caps.gpus],
        }
