"""The routing plan each node's router gets (control_plane/placement/forms.py): forms and their
thresholds follow the packaging measurements; peers are the other ready nodes with an endpoint."""

from __future__ import annotations

import pytest

from control_plane.placement.forms import NETWORK_HOP_MS, Form, PeerRouter, edge_max_input_bytes, routing_plan
from control_plane.services import validate_spec
from stratum.v1 import models_pb2 as m

VERSION = {"p95_ms": 4.0, "capacity_rps": 300.0, "ms_per_kib": 0.5, "load_time_s": 2.5}
STRAIGHT = {"mode": "straightline", "on_demand_replicas": 1, "idle_stop_s": 60}
NAMES = {"n1": "edge-1", "n2": "fog-1", "n3": "fog-2"}
TIERS = {"n1": "edge", "n2": "fog", "n3": "fog"}


def plan(node="n1", placement=None, version=VERSION, routing=STRAIGHT, slo=50.0, endpoints=None, ready=None):
    return routing_plan(node, placement or {"n1": 1, "n2": 2}, version, routing, slo,
                        endpoints=endpoints if endpoints is not None else {"n1": "http://a:1", "n2": "http://b:2"},
                        names=NAMES, tiers=TIERS, ready=ready)


def test_every_form_with_thresholds_from_the_measured_profile():
    p = plan()
    assert p.mode == "straightline" and p.slo_p95_ms == 50 and p.idle_stop_s == 60 and p.on_demand_replicas == 1
    # (50 - 4) ms / 0.5 ms per KiB = 92 KiB
    assert p.forms == (Form("edge", 4.0, max_input_bytes=92 * 1024, capacity_rps=300.0),
                       Form("always_on", 4.0 + NETWORK_HOP_MS, capacity_rps=600.0),
                       Form("on_demand", 4.0, cold_start_s=2.5, capacity_rps=300.0))
    assert p.peers == (PeerRouter("fog-1", "http://b:2", "fog"),)


def test_local_mode_has_no_forms_or_peers():
    p = plan(routing={"mode": "local"})
    assert (p.mode, p.forms, p.peers) == ("local", (), ())
    assert plan(routing={}).mode == "local"


def test_peers_need_an_endpoint_and_a_ready_node():
    placement = {"n1": 1, "n2": 1, "n3": 1}
    eps = {"n1": "http://a:1", "n2": "http://b:2", "n3": "http://c:3"}
    assert [x.node_name for x in plan(placement=placement, endpoints=eps).peers] == ["fog-1", "fog-2"]
    assert [x.node_name for x in plan(placement=placement, endpoints=eps, ready={"n1", "n3"}).peers] == ["fog-2"]
    assert [x.node_name for x in plan(placement=placement, endpoints={"n1": "http://a:1", "n3": "http://c:3"}).peers] == ["fog-2"]
    alone = plan(placement={"n1": 1}, endpoints={"n1": "http://a:1"})
    assert [f.form for f in alone.forms] == ["edge", "on_demand"] and alone.peers == ()


def test_a_node_without_local_replicas_has_no_edge_form():
    p = plan(node="n3", placement={"n1": 1, "n2": 2, "n3": 0})
    assert [f.form for f in p.forms] == ["always_on", "on_demand"]


@pytest.mark.parametrize("p95, per_kib, slo, want", [
    (4.0, 0.5, 50.0, 94208),
    (4.0, 0.5, 0.0, 0),  # no objective: no limit
    (4.0, 0.0, 50.0, 0),  # not measured: no limit
    (60.0, 0.5, 50.0, 1),  # already slower than the objective: only tiny bodies
])
def test_edge_max_input_bytes(p95, per_kib, slo, want):
    assert edge_max_input_bytes(p95, per_kib, slo) == want


@pytest.mark.parametrize("routing, path, text", [
    (m.Routing(mode="fastest"), "routing.mode", "'fastest' is not a routing mode"),
    (m.Routing(mode="straightline", on_demand_replicas=17), "routing.on_demand_replicas", "0 to 16"),
    (m.Routing(on_demand_replicas=1), "routing.on_demand_replicas", "only with mode = \"straightline\""),
    (m.Routing(mode="straightline", idle_stop_s=-1), "routing.idle_stop", "positive duration"),
    (m.Routing(mode="straightline", ood_share_max=1.5), "routing.ood_share_max", "from 0 to 1"),
])
def test_bad_routing_is_named_by_its_attribute_path(routing, path, text):
    problems = validate_spec(m.ServiceSpec(name="svc", model="m", routing=routing))
    assert [p for p, _ in problems] == [path] and text in problems[0][1]


def test_good_routing_passes():
    assert validate_spec(m.ServiceSpec(name="svc", model="m", routing=m.Routing(
        mode="straightline", on_demand_replicas=2, idle_stop_s=30, ood_share_max=0.3))) == []


def test_always_on_capacity_counts_only_the_peers_in_the_plan():
    placement = {"n1": 1, "n2": 2, "n3": 3}
    eps = {"n1": "http://a:1", "n2": "http://b:2", "n3": "http://c:3"}
    fog = {f.form: f for f in plan(placement=placement, endpoints=eps, ready={"n1", "n3"}).forms}["always_on"]
    assert fog.capacity_rps == 300.0 * 3  # n2 is down: its 2 replicas do not count
