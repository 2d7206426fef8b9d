"""Correct-by-construction plans: an unsatisfiable stratum_service fails at `terraform plan`,
with the analysis' message, and nothing is created (real terraform, control plane and node)."""

from __future__ import annotations

import pytest

from stratum.v1 import models_pb2 as m
from tests.harness import wait_for
from tests.provider.tfharness import Step, run_steps

pytestmark = pytest.mark.e2e


@pytest.fixture
def edge_node(control_plane, start_node, admin):
    start_node("edge-1", tier="edge", labels={"zone": "north"})
    wait_for(lambda: admin.nodes().get("edge-1") and admin.nodes()["edge-1"].state == "ready", 30, what="node ready")
    return admin.nodes()["edge-1"]


def service(name: str, **requirements) -> str:
    req = ", ".join(f"{k} = {v!r}".replace("'", '"') for k, v in requirements.items())
    return f'resource "stratum_service" "{name}" {{\n  name = "{name}"\n  model = "m"\n  requirements = {{ {req} }}\n}}\n'


def test_an_impossible_requirement_fails_at_plan_naming_the_closest_node(ws, admin, edge_node):
    memory = edge_node.capabilities.memory_mb
    cfg = ws.provider + service("big", memory_mb=memory * 4, tiers=["edge"]) + service("gpu", gpu=1, zone="south")
    run_steps(ws, [Step(cfg, plan_only=True, expect_error=[
        f"requirements.memory_mb = {memory * 4}: largest edge node is edge-1 with {memory} MiB",
        'with stratum_service.big',
        "requirements.gpu = 1", "requirements.zone", 'with stratum_service.gpu',
    ])])
    with pytest.raises(Exception):
        admin.GetService(m.GetServiceRequest(name="big"))


def test_services_that_each_fit_but_not_together_fail_at_plan(ws, edge_node):
    each = edge_node.capabilities.memory_mb // 9  # ten of these need 10/9 of the node
    cfg = ws.provider + "".join(service(f"s{i}", memory_mb=each) for i in range(10))
    ws.write(ws.provider + service("s0", memory_mb=each))
    assert ws.plan().rc == 2
    ws.write(cfg)
    res = ws.plan(check=False)
    assert res.rc == 1, res.output
    assert "found no room" in res.output and "short by" in res.output and "edge-1" in res.output, res.output
    assert "Traceback" not in res.output


def test_what_if_placement_data_source(ws, control_plane, start_node, admin, edge_node):
    start_node("fog-1", tier="fog", labels={"zone": "south"})
    wait_for(lambda: admin.nodes().get("fog-1") and admin.nodes()["fog-1"].state == "ready", 30, what="fog node ready")
    cfg = ws.provider + '''
data "stratum_placement" "edge" {
  requirements = { memory_mb = 256, tiers = ["edge"] }
  replicas     = 2
  placement    = { pack = true }
}
data "stratum_placement" "gpu" {
  requirements = { gpu = 1 }
}
output "edge" { value = data.stratum_placement.edge }
output "gpu" { value = data.stratum_placement.gpu }
'''

    def check(ws):
        edge, gpu = ws.outputs()["edge"], ws.outputs()["gpu"]
        assert edge["fits"] is True and edge["violations"] == []
        assert edge["placements"] == [{"node_id": admin.nodes()["edge-1"].id, "node_name": "edge-1", "replicas": 2}]
        assert edge["rejected"] == [{"node_name": "fog-1", "reason": "fog-1 is fog, not edge"}]
        assert gpu["fits"] is False and gpu["placements"] == []
        assert any(v.startswith("requirements.gpu = 1") for v in gpu["violations"]), gpu["violations"]
        assert {r["node_name"] for r in gpu["rejected"]} == {"edge-1", "fog-1"}

    run_steps(ws, [Step(cfg, check=check)])


def test_bad_routing_and_scaling_fail_at_plan_on_their_attribute(ws, admin, edge_node):
    cfg = ws.provider + '''
resource "stratum_service" "a" {
  name    = "a"
  model   = "m"
  routing = { mode = "fastest" }
}
resource "stratum_service" "b" {
  name    = "b"
  model   = "m"
  routing = { mode = "straightline", idle_stop = "soon", ood_share_max = 2 }
}
resource "stratum_service" "c" {
  name    = "c"
  model   = "m"
  routing = { on_demand_replicas = 1 }
}
resource "stratum_service" "d" {
  name    = "d"
  model   = "m"
  scaling = { mode = "magic", min = 3, max = 2 }
}
resource "stratum_service" "e" {
  name    = "e"
  model   = "m"
  scaling = { vertical = true, zero_after = "whenever" }
}
resource "stratum_service" "f" {
  name    = "f"
  model   = "m"
  scaling = { vertical = true, zero_after = "10m" }
}
'''
    run_steps(ws, [Step(cfg, plan_only=True, expect_error=[
        "'fastest' is not a routing mode", 'with stratum_service.a',
        "Invalid routing.idle_stop", "invalid duration 'soon'", "Invalid routing.ood_share_max",
        'with stratum_service.b',
        'on-demand replicas serve only with mode = "straightline"', 'with stratum_service.c',
        "'magic' is not a scaling mode", "scaling.max = 2: give 3 to 64 replicas", 'with stratum_service.d',
        "Invalid scaling.zero_after", "invalid duration 'whenever'", 'with stratum_service.e',
        'vertical scaling needs mode = "predictive" or "reactive"',
        'scale to zero needs mode = "predictive" or "reactive"', 'with stratum_service.f',
    ])])
    for name in "abcdef":
        with pytest.raises(Exception):
            admin.GetService(m.GetServiceRequest(name=name))
