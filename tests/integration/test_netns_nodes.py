"""Node daemons on separate hosts (network namespaces) against one control plane.

Each host reaches the control plane over its own veth pair and bridge, so the
addresses a node reports are its own, and cutting a host's link is a real
network failure, not a killed process.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.harness import ControlPlane, NodeDaemon, wait_for

pytestmark = pytest.mark.netns


def netns_addresses(netns: str) -> set[str]:
    out = json.loads(subprocess.run(["ip", "-n", netns, "-j", "addr"], capture_output=True, text=True, check=True).stdout)
    return {a["local"] for link in out for a in link.get("addr_info", []) if a["family"] == "inet" and a["local"] != "127.0.0.1"}


def state(client, name):
    node = client.nodes().get(name)
    return node.state if node else None


def test_two_hosts_report_their_own_capabilities_and_recover(tmp_path, test_network):
    edge_host, fog_host = test_network.add_host(), test_network.add_host()
    plane = ControlPlane(str(tmp_path), host=test_network.gateway).start()
    nodes = {}
    try:
        nodes["edge"] = NodeDaemon(str(tmp_path), "ns-edge", plane.endpoint, plane.join_token, tier="edge",
                                   labels={"zone": "north"}, netns=edge_host.netns).start()
        nodes["fog"] = NodeDaemon(str(tmp_path), "ns-fog", plane.endpoint, plane.join_token, tier="fog",
                                  labels={"zone": "south"}, netns=fog_host.netns).start()
        c = plane.client()
        wait_for(lambda: {n.name: n.state for n in c.nodes().values()} == {"ns-edge": "ready", "ns-fog": "ready"}, 60,
                 what="both namespace nodes ready")
        seen = c.nodes()
        edge, fog = seen["ns-edge"], seen["ns-fog"]
        # Addresses: each node reports exactly the addresses of its own namespace.
        assert set(edge.addresses) == netns_addresses(edge_host.netns) == {edge_host.address}
        assert set(fog.addresses) == netns_addresses(fog_host.netns) == {fog_host.address}
        assert {i.name for i in edge.capabilities.interfaces} == {"lo", "eth0"}
        assert (edge.tier, dict(edge.labels), fog.tier, dict(fog.labels)) == ("edge", {"zone": "north"}, "fog", {"zone": "south"})
        assert edge.id != fog.id

        # kill -9 a daemon: the node turns down after the timeout; restarted, it is ready with the same identity.
        nodes["edge"].kill()
        wait_for(lambda: state(c, "ns-edge") == "down", 20, what="killed node marked down")
        nodes["edge"].start()
        wait_for(lambda: state(c, "ns-edge") == "ready", 30, what="restarted node ready again")
        assert c.nodes()["ns-edge"].id == edge.id and len(c.nodes()) == 2

        # Cut the fog host's link: down. Restore it: the daemon reconnects by itself.
        fog_host.link_down()
        wait_for(lambda: state(c, "ns-fog") == "down", 20, what="cut-off node marked down")
        assert nodes["fog"].running  # it keeps running while the control plane is away
        fog_host.link_up()
        wait_for(lambda: state(c, "ns-fog") == "ready", 60, what="reconnected node ready again")
        assert c.nodes()["ns-fog"].id == fog.id and len(c.nodes()) == 2
    finally:
        for n in nodes.values():
            n.stop()
        plane.stop()
