"""stratum_nodes and stratum_node with real terraform, a real control plane and real node daemons."""

from __future__ import annotations

import pytest

from tests.harness import wait_for
from tests.provider.tfharness import Step, run_steps

pytestmark = pytest.mark.e2e


@pytest.fixture
def two_nodes(start_node, admin):
    """edge-1 (edge, zone=north) and fog-1 (fog, zone=south), both ready; the server's view of them by name."""
    start_node("edge-1", tier="edge", labels={"zone": "north"})
    start_node("fog-1", tier="fog", labels={"zone": "south"})
    return wait_for(lambda: (n := admin.nodes(state="ready")) and len(n) == 2 and n, what="two ready nodes")


def expected(node) -> dict:
    caps = node.capabilities
    return {
        "id": node.id, "name": node.name, "tier": node.tier, "labels": dict(node.labels), "state": node.state,
        "cpu_cores": caps.cpu_cores, "memory_mb": caps.memory_mb, "arch": caps.arch, "gpus": len(caps.gpus),
        "addresses": list(node.addresses),
    }


def test_nodes_filters(ws, two_nodes):
    servers = {name: expected(n) for name, n in two_nodes.items()}
    edge = two_nodes["edge-1"]
    cfg = ws.provider + f'''
data "stratum_nodes" "all" {{}}
data "stratum_nodes" "edge" {{
  tier = "edge"
}}
data "stratum_nodes" "south" {{
  labels = {{ zone = "south" }}
  state  = "ready"
}}
data "stratum_nodes" "big" {{
  min_cpu       = {edge.capabilities.cpu_cores + 1000}
}}
data "stratum_nodes" "enough_memory" {{
  min_cpu       = 1
  min_memory_mb = {edge.capabilities.memory_mb}
}}
data "stratum_nodes" "gpu" {{
  gpu = true
}}
data "stratum_nodes" "no_gpu" {{
  gpu = false
}}
output "all"    {{ value = data.stratum_nodes.all.nodes }}
output "edge"   {{ value = data.stratum_nodes.edge.nodes }}
output "south"  {{ value = [for n in data.stratum_nodes.south.nodes : n.name] }}
output "big"    {{ value = data.stratum_nodes.big.nodes }}
output "memory" {{ value = [for n in data.stratum_nodes.enough_memory.nodes : n.name] }}
output "gpu"    {{ value = [for n in data.stratum_nodes.gpu.nodes : n.name] }}
output "no_gpu" {{ value = [for n in data.stratum_nodes.no_gpu.nodes : n.name] }}
output "first_address" {{ value = data.stratum_nodes.edge.nodes[0].addresses }}
'''
    def check(ws):
        out = ws.outputs()
        assert out["all"] == [servers["edge-1"], servers["fog-1"]]  # every field, ordered by name
        assert out["edge"] == [servers["edge-1"]]
        assert out["south"] == ["fog-1"]
        assert out["big"] == []
        assert out["memory"] == sorted(n for n, s in servers.items() if s["memory_mb"] >= edge.capabilities.memory_mb)
        with_gpu = sorted(n for n, s in servers.items() if s["gpus"] > 0)
        assert out["gpu"] == with_gpu and out["no_gpu"] == sorted(set(servers) - set(with_gpu))
        ids = {r["values"]["id"] for r in ws.show()["values"]["root_module"]["resources"]}
        assert len(ids) == 7  # one id per distinct query

    run_steps(ws, [Step(cfg, check=check)])


def test_node_by_name_and_by_id(ws, two_nodes):
    fog = two_nodes["fog-1"]
    cfg = ws.provider + f'''
data "stratum_node" "by_name" {{
  name = "fog-1"
}}
data "stratum_node" "by_id" {{
  id = "{fog.id}"
}}
output "by_name" {{ value = data.stratum_node.by_name }}
output "by_id"   {{ value = data.stratum_node.by_id }}
'''

    def check(ws):
        out = ws.outputs()
        caps = fog.capabilities
        want = {**expected(fog), "cpu_model": caps.cpu_model, "os": caps.os, "disk_mb": caps.disk_mb, "gpu_models": [g.model for g in caps.gpus]}
        assert out["by_name"] == want and out["by_id"] == want

    run_steps(ws, [Step(cfg, check=check)])


def test_node_errors(ws, two_nodes):
    run_steps(ws, [
        Step(ws.provider + 'data "stratum_node" "x" {\n  name = "nope"\n}\n', plan_only=True,
             expect_error=["Node not found", "no node with name 'nope'", 'name = "nope"']),
        Step(ws.provider + 'data "stratum_node" "x" {}\n', plan_only=True, expect_error=["Missing node id or name"]),
        Step(ws.provider + f'data "stratum_node" "x" {{\n  name = "fog-1"\n  id = "{two_nodes["edge-1"].id}"\n}}\n', plan_only=True,
             expect_error=["Conflicting node id and name"]),
        # the name of one node is not found by way of another's id
        Step(ws.provider + f'data "stratum_node" "x" {{\n  name = "{two_nodes["edge-1"].id}"\n}}\n', plan_only=True,
             expect_error=["Node not found"]),
    ])


def test_nodes_bad_filter_names_the_attribute(ws, control_plane):
    run_steps(ws, [
        Step(ws.provider + 'data "stratum_nodes" "x" {\n  tier = "moon"\n}\n', plan_only=True,
             expect_error=["Invalid tier", 'tier = "moon"']),
        Step(ws.provider + 'data "stratum_nodes" "x" {\n  labels = { "bad key!" = "v" }\n}\n', plan_only=True,
             expect_error=['Invalid labels["bad key!"]']),
        Step(ws.provider + 'data "stratum_nodes" "x" {\n  min_memory_mb = 1.5\n}\n', plan_only=True,
             expect_error=["Invalid min_memory_mb"]),
    ])


def test_node_going_down_shows_in_state(ws, start_node, admin):
    node = start_node("edge-9", tier="edge")
    wait_for(lambda: admin.nodes(state="ready").get("edge-9"), what="edge-9 ready")
    cfg = ws.provider + 'data "stratum_nodes" "down" {\n  state = "down"\n}\noutput "down" { value = [for n in data.stratum_nodes.down.nodes : n.name] }\n'
    run_steps(ws, [Step(cfg, check=lambda ws: _assert_eq(ws.outputs()["down"], []))])
    node.stop()
    wait_for(lambda: admin.nodes(state="down").get("edge-9"), what="edge-9 down")
    run_steps(ws, [Step(cfg, check=lambda ws: _assert_eq(ws.outputs()["down"], ["edge-9"]))])


def _assert_eq(a, b):
    assert a == b, (a, b)
