"""After a control-plane restart, a node that was ready gets its reconnect wait (the node daemon's
backoff cap) plus one full timeout before it is marked down, on the real store."""

from __future__ import annotations

import time

from control_plane.join_tokens import JoinTokens
from control_plane.nodes import RECONNECT_WAIT_S, NodeRegistry
from control_plane.store import JoinTokenRow, NodeRow, Store
from node_daemon import agent
from stratum import pki


def registry(store: Store, timeout: float) -> NodeRegistry:
    key, cert = pki.make_ca()
    return NodeRegistry(store, JoinTokens(store, pki.fingerprint(cert)), key, cert, timeout)


def test_a_restarted_control_plane_waits_for_nodes_as_long_as_they_may_take_to_reconnect(tmp_path):
    assert RECONNECT_WAIT_S >= agent.BACKOFF_CAP_S  # the longest a node waits between two tries
    store = Store(None, str(tmp_path))
    store.insert_join_token(JoinTokenRow("jt-000000000001", "t1", "s3cret", "edge", {}, "", 0, 0, "", time.time(), None))
    store.enroll_node(NodeRow("node-a", "a", "edge", {}, "down", "{}", "{}", "fp-a", "t1", time.time()),
                      "jt-000000000001", 0)
    store.update_node_session("node-a", "{}", {}, "ready", time.time() - 60)  # ready when the old one died
    timeout = 3.0
    before = time.time()
    nodes = registry(store, timeout)  # the restarted control plane
    # a node whose backoff is at its cap tries again up to RECONNECT_WAIT_S later: still ready then
    assert nodes.check_liveness(before + timeout + 0.5) == []
    assert nodes.check_liveness(before + RECONNECT_WAIT_S + timeout - 0.5) == []
    assert nodes.get("node-a").state == "ready"
    # one that has not come back by then is down
    assert nodes.check_liveness(time.time() + RECONNECT_WAIT_S + timeout + 0.1) == [("node-a", "down")]
    assert store.get_node(name="a").state == "down"
    store.close()
