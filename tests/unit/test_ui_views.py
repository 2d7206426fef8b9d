"""The dashboard's pure parts: the overview picture, node filters, plots and decisions built from
API messages made here, sessions and CSRF, and which calls a read token may make."""

from __future__ import annotations

import pytest

from control_plane.access_tokens import AccessTokens, allowed, validate_spec
from control_plane.history import scaling_change, service_points
from control_plane.ui import views
from control_plane.ui.app import _safe_next
from control_plane.store import Store
from control_plane.ui.sessions import Sessions
from stratum.v1 import access_pb2 as ac, apps_pb2 as a, control_plane_pb2 as cp, history_pb2 as h
from stratum.v1 import models_pb2 as m, pools_pb2 as p, types_pb2 as t


def node(i, name, tier, state="ready", drain=False, cpu=2, labels=None):
    n = t.Node(id=i, name=name, tier=tier, state=state, drain=drain, labels=labels or {})
    n.capabilities.cpu_cores, n.capabilities.memory_mb, n.capabilities.arch = cpu, 4096, "x86_64"
    n.utilisation.cpu_percent, n.utilisation.memory_percent = 12.5, 40.0
    return n


NODES = [node("node-e", "edge-1", "edge", labels={"zone": "north"}), node("node-f", "fog-1", "fog"),
         node("node-c", "cloud-1", "cloud", state="down"), node("node-d", "fog-2", "fog", drain=True)]


def service(name, placements, state="ready", connects=()):
    s = m.Service(spec=m.ServiceSpec(name=name, model="congestion", connects_to=list(connects)), state=state, version="v1")
    for node_id, node_name, replicas, ready, err in placements:
        s.placements.add(node_id=node_id, node_name=node_name, replicas=replicas, ready_replicas=ready, error=err)
    return s


def app(name, instances, connects=(), kind="service", state="ready"):
    x = a.App(spec=a.AppSpec(name=name, kind=kind, connects_to=list(connects)), state=state)
    for k, (node_id, node_name, st) in enumerate(instances):
        x.instances.add(index=k, node_id=node_id, node_name=node_name, state=st)
    return x


def test_overview_places_each_replica_and_instance_in_its_node_and_tier():
    services = [service("congestion", [("node-f", "fog-1", 2, 2, ""), ("node-e", "edge-1", 1, 0, "bento fetch failed")],
                        state="failed")]
    apps = [app("broker", [("node-f", "fog-1", "healthy")]),
            app("processor", [("node-f", "fog-1", "healthy")], connects=("broker", "congestion")),
            app("sensors", [("node-e", "edge-1", "running"), ("node-e", "edge-1", "failed")], connects=("broker",)),
            app("ghost", [("pool:burst#vm-1", "burst (new VM)", "pending")])]
    pool = p.CloudPool(spec=p.CloudPoolSpec(name="burst", size="t3.large"), price_per_hour=0.0832, state="scaling")
    pool.vms.add(name="vm-1", state="booting")
    pool.vms.add(name="vm-0", state="joined")
    pool.vms.add(name="vm-old", state="terminated")
    pic = views.overview(NODES, services, apps, [pool])

    assert [c["tier"] for c in pic["tiers"]] == ["cloud", "fog", "edge"]
    fog = {n["name"]: n for n in pic["tiers"][1]["nodes"]}
    assert list(fog) == ["fog-1", "fog-2"] and fog["fog-2"]["state"] == "drained"
    assert [(i["key"], i["state"], i["label"]) for i in fog["fog-1"]["items"]] == [
        ("service/congestion", "healthy", "congestion ×2"), ("app/broker", "healthy", "broker"),
        ("app/processor", "healthy", "processor")]
    edge = pic["tiers"][2]["nodes"][0]["items"]
    assert [(i["label"], i["state"]) for i in edge] == [("congestion", "failed"), ("sensors#0", "healthy"),
                                                         ("sensors#1", "failed")]
    assert pic["tiers"][0]["nodes"][0]["state"] == "down"
    assert {(x["from"], x["to"]) for x in pic["links"]} == {("app/processor", "app/broker"),
                                                             ("app/processor", "service/congestion"),
                                                             ("app/sensors", "app/broker")}
    c = pic["counts"]
    assert c["replicas"] == {"healthy": 2, "failed": 1, "starting": 0}
    assert c["instances"] == {"healthy": 3, "failed": 1, "starting": 1}
    assert c["nodes"] == {"ready": 2, "down": 1, "drained": 1} and c["services"] == {"failed": 1}
    assert [i["name"] for i in pic["unplaced"]] == ["ghost"]
    # billed: the booting and the joined VM, not the terminated one
    assert pic["cost_per_hour"] == pytest.approx(2 * 0.0832) and pic["pools"][0]["vms"] == 2


def test_links_name_only_what_exists():
    pic = views.overview(NODES, [], [app("x", [], connects=("gone", "y")), app("y", [])], [])
    assert pic["links"] == [{"from": "app/x", "to": "app/y"}]


@pytest.mark.parametrize("tier, label, state, names", [
    ("", "", "", ["edge-1", "fog-1", "cloud-1", "fog-2"]),
    ("fog", "", "", ["fog-1", "fog-2"]),
    ("", "zone=north", "", ["edge-1"]),
    ("", "zone=south", "", []),
    ("", "zone", "", ["edge-1"]),
    ("", "", "drained", ["fog-2"]),
    ("", "", "ready", ["edge-1", "fog-1"]),
    ("fog", "", "down", []),
])
def test_node_filters(tier, label, state, names):
    assert [n.name for n in views.filter_nodes(NODES, tier, label, state)] == names


def points(rows):
    out = []
    for at, values, notes in rows:
        pt = h.HistoryPoint(values=values, notes=notes)
        pt.at.FromSeconds(at)
        out.append(pt)
    return out


def test_demand_plot_holds_requests_forecast_capacity_and_replicas():
    pts = points([(600, {"requests": 100, "forecast_rpm": 120, "capacity_rpm": 150, "replicas": 2}, {}),
                  (660, {"requests": 130}, {}),
                  (720, {"requests": 90, "forecast_rpm": 100, "capacity_rpm": 150, "replicas": 2}, {})])
    fig = views.demand_plot(pts)
    by = {tr["name"]: tr for tr in fig["data"]}
    assert by["requests/min"]["y"] == [100, 130, 90] and by["forecast"]["y"] == [120, 100]
    assert by["provisioned capacity"]["x"] == ["1970-01-01T00:10:00Z", "1970-01-01T00:12:00Z"]
    assert by["replicas"]["yaxis"] == "y2" and fig["points"] == 3 + 2 + 2 + 2


def test_a_plot_without_points_says_so():
    fig = views.latency_plot([])
    assert fig["data"] == [] and fig["points"] == 0 and fig["layout"]["title"]["text"]


def test_decisions_newest_first():
    pts = points([(60, {"replicas": 2, "replicas_before": 1}, {"reason": "forecast up"}),
                  (120, {"replicas": 1, "replicas_before": 2, "cpu": 0.5}, {"reason": "quiet"})])
    assert [(d["replicas_before"], d["replicas"], d["cpu"], d["reason"]) for d in views.decisions(pts)] == [
        (2, 1, 0.5, "quiet"), (1, 2, None, "forecast up")]


def test_service_points_join_the_autoscalers_decision_to_its_minute():
    minutes = [{"minute": m_, "requests": 10 * m_, "failures": 0, "p50_ms": 5.0, "p95_ms": float("inf") if m_ == 3 else 9.0}
               for m_ in range(1, 8)]
    rows = service_points("s", minutes, 50.0, {"minute": 7, "forecast_rpm": 80.0, "capacity_rpm": 120.0, "replicas": 2,
                                               "reason": "r"})
    assert [r[2] for r in rows] == [180, 240, 300, 360, 420]  # the last five minutes, in seconds
    assert "p95_ms" not in rows[0][3]["values"]  # minute 3: an infinite percentile is left out
    assert rows[-1][3]["values"] | {} == {"requests": 70, "failures": 0, "p50_ms": 5.0, "p95_ms": 9.0, "slo_ms": 50.0,
                                          "forecast_rpm": 80.0, "capacity_rpm": 120.0, "replicas": 2}
    assert rows[-1][3]["notes"] == {"reason": "r"}
    # a decision for a minute no node has reported yet is a point of its own
    ahead = service_points("s", minutes[:2], 0.0, {"minute": 9, "forecast_rpm": 1.0, "capacity_rpm": 2.0, "replicas": 1})
    assert ahead[-1][2] == 540 and ahead[-1][3]["values"]["requests"] == 0


def test_scaling_change_only_on_a_new_count_or_size():
    doc = {"spec": {"replicas": 1}, "scaled": 3, "size": {"cpu": 0.5}, "scaling_reason": "forecast 300 req/min"}
    shape, point = scaling_change(None, doc)
    assert shape == (3, 0.5) and point is None  # first sight: nothing to compare with
    assert scaling_change(shape, doc)[1] is None
    _, point = scaling_change((2, 0.5), doc)
    assert point == {"values": {"replicas": 3, "replicas_before": 2, "cpu": 0.5}, "notes": {"reason": "forecast 300 req/min"}}
    assert scaling_change((3, 0.5), doc | {"zero": True})[1]["values"]["replicas"] == 0


@pytest.mark.parametrize("method, ok", [
    ("/stratum.v1.ControlPlane/GetService", True), ("ListNodes", True), ("ValidateApp", True), ("PlaceWhatIf", True),
    ("StreamAppLogs", True), ("GetHistory", True), ("CreateService", False), ("UpdateModel", False),
    ("DeleteApp", False), ("UploadBlob", False), ("RetrainModel", False), ("RunAppNow", False),
    ("PinModelVersion", False), ("DrainNode", False), ("CreateAccessToken", False), ("DeleteAccessToken", False),
    ("GetJoinToken", False), ("ListJoinTokens", False), ("ListAccessTokens", False), ("Getaway", False),
])
def test_a_read_token_calls_only_what_changes_nothing_and_shows_no_secret(method, ok):
    assert allowed("read", method) is ok
    assert allowed("admin", method) and not allowed("", method) and not allowed("write", method)


def test_every_rpc_is_judged_for_a_read_token():
    """A method added to the API is either a read (by its name) or the admin's: never both, never neither."""
    names = [md.name for md in cp.DESCRIPTOR.services_by_name["ControlPlane"].methods]
    reads = {n for n in names if allowed("read", n)}
    assert {"GetStatus", "ListNodes", "GetApp", "ListAppRuns", "GetHistory", "ListModelVersions"} <= reads
    assert not reads & {n for n in names if n.startswith(("Create", "Update", "Delete", "Upload"))}


@pytest.mark.parametrize("spec, field", [
    (ac.AccessTokenSpec(name="", scope="read"), "name"),
    (ac.AccessTokenSpec(name="x", scope="write"), "scope"),
    (ac.AccessTokenSpec(name="x", scope="read", ttl="forever"), "ttl"),
    (ac.AccessTokenSpec(name="x", scope="read", ttl="99999999999h"), "ttl"),
    (ac.AccessTokenSpec(name="x", scope="read", description="d" * 5000), "description"),
])
def test_bad_access_token_specs_name_the_field(spec, field):
    assert field in [f for f, _ in validate_spec(spec)]


def test_sessions_log_in_expire_and_check_csrf(tmp_path):
    store = Store(None, str(tmp_path))
    tokens = AccessTokens(store)
    viewer_token = tokens.create(ac.AccessTokenSpec(name="viewer", scope="read", ttl="1000s"), now=0).token
    s = Sessions(ttl_s=60, admin_token="admin-secret", access_tokens=tokens)
    assert s.login("wrong", now=0) is None and s.login("", now=0) is None
    assert s.login(viewer_token[:-1] + ("0" if viewer_token[-1] != "0" else "1"), now=0) is None  # one digit off
    admin = s.login(" admin-secret\n", now=0)
    assert (admin.role, admin.who, admin.can_act) == ("admin", "admin", True)
    viewer = s.login(viewer_token, now=990)
    assert (viewer.role, viewer.who, viewer.can_act, viewer.expires_at) == ("read", "viewer", False, 1000.0)  # no later than its token
    assert s.login(viewer_token, now=1000) is None  # the token itself expired
    assert s.get(admin.id, now=59)[0] is admin
    assert s.get(admin.id, now=60) == (None, "expired") and s.get(admin.id, now=61) == (None, "expired")
    assert s.get("made-up", now=1) == (None, "") and s.get(None) == (None, "")
    assert Sessions.csrf_ok(viewer, viewer.csrf) and not Sessions.csrf_ok(viewer, None)
    assert not Sessions.csrf_ok(viewer, "") and not Sessions.csrf_ok(viewer, admin.csrf)
    s.logout(viewer.id)
    assert s.get(viewer.id, now=991) == (None, "")
    tokens.delete("viewer")
    assert s.login(viewer_token, now=500) is None  # revoked
    store.close()


@pytest.mark.parametrize("value, safe", [("/models/x", "/models/x"), ("//evil.example/x", ""), ("https://evil", ""),
                                         ("/\\evil", ""), (None, ""), ("models", "")])
def test_login_redirects_only_to_this_site(value, safe):
    assert _safe_next(value) == safe


@pytest.mark.parametrize("page_s, every", [(0.001, 5.0), (0.1, 5.0), (0.25, 10.0), (1.0, 40.0)])
def test_an_open_page_refreshes_less_often_the_longer_it_takes_to_build(page_s, every):
    from control_plane.ui.app import Dashboard

    assert Dashboard(api=None, sessions=None, pictures=None, live_s=5.0).live_interval(page_s) == every
