"""A real node outlives a control-plane restart on the same port and comes back at its first or second
try once the control plane is up, even after its backoff has grown to the cap. Read from the logs (events
and their order, the node's session counter), never from how long anything took."""

from __future__ import annotations

import json

import pytest

from node_daemon import agent
from tests.harness import ControlPlane, NodeDaemon, wait_for

pytestmark = pytest.mark.timeout(180)

FAILED = {"session failed", "session lost", "session error"}


def events(process) -> list[dict]:
    out = []
    for line in process.log().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # not one of our JSON log lines
    return out


def node_events(node, msg: str) -> list[dict]:
    return [e for e in events(node) if e.get("msg") == msg]


def test_node_reconnects_at_its_first_or_second_try_after_the_control_plane_is_back(tmp_path):
    plane = ControlPlane(str(tmp_path)).start()
    node = NodeDaemon(str(tmp_path), "edge-1", plane.endpoint, plane.join_token, tier="edge").start()
    try:
        wait_for(lambda: node_events(node, "session started"), 30, what="the node's first session")
        plane.stop()
        # Enough refused tries that the backoff has reached its cap (attempt 4 is the first at 5 s).
        wait_for(lambda: len(node_events(node, "reconnecting")) >= 6, 90, what="six reconnect tries while the control plane is down")
        plane.start()  # same data dir, same ports
        back = [e["ts"] for e in events(plane) if e.get("msg") == "control plane serving"][-1]
        started = wait_for(lambda: [e for e in node_events(node, "session started") if e["session"] == 2], 60,
                           what="the node's second session")[0]

        mine = events(node)
        failed_after_back = [e for e in mine if e.get("msg") in FAILED and back < e["ts"] < started["ts"]]
        assert len(failed_after_back) <= 1, failed_after_back  # ISO timestamps in UTC order as strings
        retries = node_events(node, "reconnecting")
        assert len(retries) >= 6 and all(e["retry_in_s"] <= agent.BACKOFF_CAP_S for e in retries), retries
        assert not [e for e in mine if e.get("msg") == "session started" and e["session"] > 2]  # one session since
    finally:
        node.stop()
        plane.stop()
