"""Ready nodes written straight into a store, for tests of control-plane logic without daemons."""

from __future__ import annotations

import time

from google.protobuf import json_format

from control_plane.store import JoinTokenRow, NodeRow, Store
from stratum.v1 import types_pb2 as t


def ready_edge_nodes(store: Store, count: int = 2) -> None:
    """node-1..node-<count> (edge-1..), enrolled with one join token, 2 cores and 4 GiB each, ready."""
    store.insert_join_token(JoinTokenRow("jt-000000000001", "t1", "s3cret", "edge", {}, "", 0, 0, "", time.time(), None))
    caps = json_format.MessageToJson(t.Capabilities(cpu_cores=2, memory_mb=4096, arch="x86_64"))
    for i in range(1, count + 1):
        store.enroll_node(NodeRow(f"node-{i}", f"edge-{i}", "edge", {}, "down", "{}", "{}", f"fp-{i}", "t1", time.time()),
                          "jt-000000000001", 0)
        store.update_node_session(f"node-{i}", caps, {}, "ready", time.time())
