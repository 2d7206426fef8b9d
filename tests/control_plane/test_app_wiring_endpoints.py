"""Which broker URL a consumer is given, on the real store: the endpoint of the target's instance
where it is placed now, else the one it last reported (kept in the app's document), so consumers
are never pointed at a node the target left, and a restarted control plane, which has heard no
report yet, gives them the URL they already run with instead of holding (stopping) them."""

from __future__ import annotations

import time

from control_plane.apps.resource import spec_json
from control_plane.store import JoinTokenRow, NodeRow
from stratum.v1 import apps_pb2 as a, node_agent_pb2 as na
from tests.control_plane.test_app_scheduler import control_plane


def add_nodes(store, *names):
    store.insert_join_token(JoinTokenRow("jt-000000000001", "t1", "s3cret", "fog", {}, "", 0, 0, "", time.time(), None))
    for name in names:
        store.enroll_node(NodeRow(f"node-{name}", name, "fog", {}, "down", "{}", "{}", f"fp-{name}", "t1", time.time()),
                          "jt-000000000001", 0)
        store.update_node_session(f"node-{name}", "{}", {}, "ready", time.time())


def put_app(store, name, node, connects_to=()):
    spec = a.AppSpec(name=name, kind="service", command="true", ports={"mqtt": 0} if not connects_to else {},
                     connects_to=list(connects_to))
    store.put_doc("apps", name, {"name": name, "spec": spec_json(spec), "spec_version": 1, "placement": {node: 1},
                                 "instances": {"0": node}, "deleting": False, "created_at": 0.0})


def report(apps, node, state, address):
    apps.on_report(node, na.ServiceReport(apps=[na.AppStatus(app="broker", instance=0, spec_version=1, state=state,
                                                               endpoints={"mqtt": address})]))


def broker_url(apps):
    env = apps.connections("app/sensor", ["broker"], "node-edge")
    return env and env["STRATUM_BROKER_URL"]


def test_a_consumer_follows_where_the_broker_is_placed_and_keeps_its_url_across_a_restart(tmp_path):
    store, apps = control_plane(tmp_path)
    add_nodes(store, "edge", "fog-a", "fog-b")
    put_app(store, "broker", "node-fog-a")
    put_app(store, "sensor", "node-edge", connects_to=["broker"])
    assert broker_url(apps) is None  # never reported: the sensor is held back, as before
    report(apps, "node-fog-a", "healthy", "10.0.0.11:1883")
    assert broker_url(apps) == "mqtt://10.0.0.11:1883"

    # the control plane restarts: no report yet, the sensor keeps the URL it runs with
    _, again = control_plane(tmp_path, store)
    assert broker_url(again) == "mqtt://10.0.0.11:1883"
    # the broker restarting on its node (no endpoint while it does) does not unwire the sensor either
    report(again, "node-fog-a", "restarting", "")
    assert broker_url(again) == "mqtt://10.0.0.11:1883"

    # the broker moves to fog-b; fog-a (cut off) still has its last report of a healthy broker
    report(again, "node-fog-a", "healthy", "10.0.0.11:1883")
    doc = store.get_doc("apps", "broker")
    again.placed(doc, {"node-fog-b": 1})
    store.put_doc("apps", "broker", doc)
    report(again, "node-fog-b", "running", "10.0.0.12:1883")
    assert broker_url(again) == "mqtt://10.0.0.12:1883"  # "fog-a" sorts first, yet the broker is not there
    report(again, "node-fog-a", "healthy", "10.0.0.11:1883")  # a late report from the old node changes nothing
    assert broker_url(again) == "mqtt://10.0.0.12:1883"
    assert store.get_doc("apps", "broker")["endpoints"] == {"0": {"node_id": "node-fog-b",
                                                                  "ports": {"mqtt": "10.0.0.12:1883"}}}
