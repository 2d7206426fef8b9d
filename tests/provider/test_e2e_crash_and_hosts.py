"""Real terraform against a control plane that crashes mid-apply, and against nodes on separate hosts."""

from __future__ import annotations

import subprocess
import time

import pytest

from stratum.v1 import control_plane_pb2 as cp
from tests.harness import ControlPlane, NodeDaemon, wait_for
from tests.provider.conftest import provider_hcl
from tests.integration.test_netns_nodes import netns_addresses

pytestmark = pytest.mark.e2e

TOKENS = 10  # each create after the kill waits out the provider's retries (~3.5 s)


def tokens_config(provider: str) -> str:
    return provider + f'''
resource "stratum_join_token" "fleet" {{
  count    = {TOKENS}
  name     = "fleet-${{count.index}}"
  tier     = "edge"
  labels   = {{ batch = "b${{count.index % 3}}" }}
  max_uses = 5
}}
'''


def test_kill_9_during_apply_then_apply_again_loses_and_doubles_nothing(tmp_path, make_workspace):
    plane = ControlPlane(str(tmp_path)).start()
    try:
        ws = make_workspace(STRATUM_TOKEN=plane.admin_token)
        ws.write(tokens_config(provider_hcl(plane.endpoint, plane.ca_pem_path)))
        ws.init()
        admin = plane.client()
        # One resource at a time, so the kill lands in the middle of the apply.
        apply = subprocess.Popen(["terraform", "apply", "-no-color", "-input=false", "-auto-approve", "-parallelism=1"],
                                 cwd=ws.dir, env=ws.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        created = wait_for(lambda: (n := len(admin.ListJoinTokens().tokens)) > 1 + TOKENS // 3 and n, 120, 0.02,
                           what="the apply to be under way")
        plane.kill()
        out, _ = apply.communicate(timeout=300)
        assert apply.returncode == 1, out  # the apply failed: the control plane was gone
        assert "cannot reach the Stratum control plane" in out and "Traceback" not in out
        assert created < TOKENS + 1  # it really was interrupted

        plane.start()
        ws.apply()
        assert ws.plan().rc == 0  # converged: nothing left to do
        admin = plane.client()
        server = {t.spec.name: t for t in admin.ListJoinTokens().tokens if t.spec.name != "bootstrap"}
        assert sorted(server) == sorted(f"fleet-{i}" for i in range(TOKENS))  # none lost, none doubled
        state = {r["values"]["name"]: r["values"] for r in ws.show()["values"]["root_module"]["resources"]}
        assert sorted(state) == sorted(server)
        for name, values in state.items():
            assert (values["token"], values["labels"]) == (server[name].token, dict(server[name].spec.labels))
    finally:
        plane.stop()


@pytest.mark.netns
def test_stratum_nodes_shows_hosts_in_their_own_namespaces(tmp_path, make_workspace, test_network):
    edge_host, fog_host = test_network.add_host(), test_network.add_host()
    plane = ControlPlane(str(tmp_path), host=test_network.gateway).start()
    daemons = []
    try:
        for name, tier, host in (("edge-ns", "edge", edge_host), ("fog-ns", "fog", fog_host)):
            daemons.append(NodeDaemon(str(tmp_path), name, plane.endpoint, plane.join_token, tier=tier,
                                      labels={"site": name}, netns=host.netns).start())
        admin = plane.client()
        wait_for(lambda: len(admin.nodes(state="ready")) == 2, 60, what="both namespace nodes ready")
        ws = make_workspace(STRATUM_TOKEN=plane.admin_token)
        ws.write(provider_hcl(plane.endpoint, plane.ca_pem_path) + '''
data "stratum_nodes" "all" {}
data "stratum_nodes" "fog" {
  tier = "fog"
}
output "all" { value = data.stratum_nodes.all.nodes }
output "fog" { value = [for n in data.stratum_nodes.fog.nodes : n.name] }
''')
        ws.init()
        ws.apply()
        out = ws.outputs()
        by_name = {n["name"]: n for n in out["all"]}
        server = admin.nodes()
        assert set(by_name) == {"edge-ns", "fog-ns"} and out["fog"] == ["fog-ns"]
        assert by_name["edge-ns"]["addresses"] == [edge_host.address] and {edge_host.address} == netns_addresses(edge_host.netns)
        assert by_name["fog-ns"]["addresses"] == [fog_host.address]
        for name, n in by_name.items():
            caps = server[name].capabilities
            assert (n["id"], n["tier"], n["state"], n["cpu_cores"], n["memory_mb"], n["arch"], n["labels"]) == (
                server[name].id, server[name].tier, "ready", caps.cpu_cores, caps.memory_mb, caps.arch, {"site": name})
    finally:
        for d in daemons:
            d.stop()
        plane.stop()
