"""The smart-traffic pipeline end to end: `terraform apply` of modules/examples/smart-traffic as a
user runs it (the module's own files, its provider block reading STRATUM_*), on a real control
plane and three node daemons in network namespaces of their own, labelled edge, fog and cloud, so
every connection between tiers crosses a real network and uses the nodes' own addresses.

Checked: readings flow sensors (edge) -> Mosquitto (fog) -> processor (fog) -> congestion service
-> history store, and decisions come back on MQTT; the dashboard shows them; the aggregate job runs
on a one-minute cron, appends a version to the traffic dataset, and the model retrains on it as
its rules say; a second plan is empty, also after the run and after importing every app; destroy
leaves no process in any node's app directories."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import urllib.request
from pathlib import Path

import grpc
import paho.mqtt.client as mqtt
import psutil
import pytest

from stratum.v1 import apps_pb2 as a, datasets_pb2 as ds, models_pb2 as m
from tests.harness import ControlPlane, NodeDaemon, wait_for
from tests.provider.tfharness import Workspace

pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.timeout(600)]

EXAMPLE = Path(__file__).resolve().parents[2] / "modules" / "examples" / "smart-traffic"
APPS = ("broker", "processor", "sensors", "dashboard", "aggregate")
TIERS = ("edge", "fog", "cloud")
# What the test changes of the module's defaults: the aggregate job every minute, readings a bit
# faster, decisions every second (more of everything in the time the test waits).
TFVARS = 'aggregate_cron = "* * * * *"\nsensor_rate = 4\nwindow_s = 1\n'


def assert_no_changes(ws: Workspace, when: str) -> None:
    res = ws.plan()
    assert res.rc == 0, f"plan {when} is not empty:\n{res.output}"


def processes_under(directory: str) -> list[psutil.Process]:
    """Processes whose working directory is under `directory` (other tests on this machine run apps too)."""
    out = []
    for p in psutil.process_iter(["cwd"]):
        cwd = p.info.get("cwd") or ""
        if cwd == directory or cwd.startswith(directory + os.sep):
            out.append(p)
    return out


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as con:
        return con.execute(sql).fetchall()


@pytest.fixture
def cluster(tmp_path, test_network):
    """A control plane on the bridge and one node per tier, each in its own namespace, serving
    (and advertising) its namespace's address."""
    hosts = {tier: test_network.add_host() for tier in TIERS}
    plane = ControlPlane(str(tmp_path), host=test_network.gateway).start()
    nodes = {}
    try:
        for tier, host in hosts.items():
            nodes[tier] = NodeDaemon(str(tmp_path), f"{tier}-1", plane.endpoint, plane.join_token, tier=tier,
                                     netns=host.netns, extra=["--serve-host", host.address]).start()
        c = plane.client()
        wait_for(lambda: sorted(n.name for n in c.nodes().values() if n.state == "ready") == sorted(f"{t}-1" for t in TIERS),
                 60, what="three namespace nodes ready")
        c.close()
        yield plane, nodes, hosts
    finally:
        for n in nodes.values():
            n.stop()
        plane.stop()


@pytest.fixture
def workspace(tmp_path, provider_home, cluster):
    """The example module's own files (its provider block reads STRATUM_*), and the test's tfvars."""
    plane = cluster[0]
    ws = Workspace(tmp_path / "tf", provider_home, {"STRATUM_ENDPOINT": plane.endpoint, "STRATUM_TOKEN": plane.admin_token,
                                                    "STRATUM_CA_CERT": plane.ca_pem_path})
    shutil.copy(EXAMPLE / "main.tf", ws.dir / "main.tf")
    shutil.copytree(EXAMPLE / "apps", ws.dir / "apps", ignore=shutil.ignore_patterns("__pycache__"))
    (ws.dir / "data").mkdir()
    shutil.copy(EXAMPLE / "data" / "traffic.csv", ws.dir / "data" / "traffic.csv")
    (ws.dir / "e2e.auto.tfvars").write_text(TFVARS)
    return ws


class Decisions:
    """Subscribes to traffic/+/decision on the broker, from outside Stratum, as a signal controller would."""

    def __init__(self, endpoint: str):
        host, port = endpoint.rsplit(":", 1)
        self.seen: list[dict] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-watcher")
        self.client.on_connect = lambda c, *_: c.subscribe("traffic/+/decision", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda c, u, msg: self.seen.append(json.loads(msg.payload))
        self.client.connect(host, int(port))
        self.client.loop_start()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_the_smart_traffic_pipeline_applies_flows_aggregates_retrains_imports_and_is_destroyed(workspace, cluster):
    ws, (plane, nodes, hosts) = workspace, cluster
    c = plane.client()
    ws.apply()
    assert_no_changes(ws, "after apply")
    res, out = ws.resources(), ws.outputs()

    # Each app on its tier's node, endpoints at that node's own address.
    where = {name: [i["node_name"] for i in res[f"stratum_app.{name}[0]"]["instances"]] for name in APPS}
    assert where == {"broker": ["fog-1"], "processor": ["fog-1"], "sensors": ["edge-1", "edge-1"],
                     "dashboard": ["fog-1"], "aggregate": ["cloud-1"]}, where
    fog = hosts["fog"].address
    assert out["broker"] == f"{fog}:1883" and out["dashboard_url"].startswith(f"http://{fog}:")
    assert all(res[f"stratum_app.{n}[0]"]["state"] == "ready" for n in APPS)
    sensors = [p for p in processes_under(os.path.join(nodes["edge"].data_dir, "apps")) if "sensor.py" in p.cmdline()]
    assert len(sensors) == 2 and {p.environ()["STRATUM_BROKER_URL"] for p in sensors} == {f"mqtt://{fog}:1883"}

    # Readings flow edge -> broker -> processor -> model -> store, and decisions come back on MQTT.
    watcher = Decisions(out["broker"])
    stats_url = out["processor_url"] + "/stats"
    db = ws.dir / "traffic-history.db"  # the module's default store: a SQLite file beside it
    try:
        first = wait_for(lambda: (s := get_json(stats_url))["decisions"] > 0 and s, 60, what="the processor's first decisions")
        wait_for(lambda: watcher.subscribed.is_set(), 10, what="subscribed to decisions")
        later = wait_for(lambda: (s := get_json(stats_url))["decisions"] >= first["decisions"] + 8
                         and s["stored"] > first["stored"] and s, 30, what="more readings stored and decided")
        assert later["model_calls"] > 0 and later["messages_invalid"] == 0 and later["store_errors"] == 0, later
        wait_for(lambda: any(d["source"] == "model" for d in watcher.seen), 20, what="a model decision on traffic/+/decision")
    finally:
        watcher.close()
    assert later["model_errors"] < later["model_calls"], later
    seen = dict(rows(db, "SELECT intersection, count(*) FROM observations GROUP BY intersection"))
    assert sorted(seen) == ["i-01", "i-02", "i-03", "i-04"] and min(seen.values()) > 0, seen
    assert sum(seen.values()) >= later["stored"]  # every reading the processor counted is a row
    # The model's answers set the green times: 30/45/60 s, 10 s less for a crowd unless congested.
    by_model = rows(db, "SELECT prediction, pedestrians_per_min, green_s FROM decisions WHERE source = 'model'")
    assert by_model and all(green == {"low": 30.0, "medium": 45.0, "high": 60.0}[p] - (10.0 if peds >= 20 and p != "high" else 0)
                            for p, peds, green in by_model), by_model[:5]
    shown = get_json(out["dashboard_url"] + "api/state")["intersections"]
    assert [i["intersection"] for i in shown] == sorted(seen) and all(i["last_seq"] for i in shown), shown

    # The aggregate job runs on its one-minute cron; its output becomes the dataset's next version,
    # and the model retrains on it (retrain.on_new_data), rolling it out only if it scores no worse.
    model_before = c.GetModel(m.GetModelRequest(name="congestion"))
    assert len(model_before.versions) == 1

    def aggregated():
        run = c.GetApp(a.GetAppRequest(name="aggregate")).last_run
        assert run.state in ("", "pending", "running", "succeeded"), run
        return run if run.state == "succeeded" and run.dataset_version >= 2 else None

    run = wait_for(aggregated, 150, interval=1, what="an aggregate run that made dataset version 2")
    assert run.node_name == "cloud-1" and run.exit_code == 0 and run.scheduled_for.seconds % 60 == 0, run
    dataset = c.GetDataset(ds.GetDatasetRequest(name="traffic"))
    assert dataset.version >= 2 and dataset.row_count > 2000, dataset

    def retrained():
        model = c.GetModel(m.GetModelRequest(name="congestion"))
        return model if len(model.versions) >= 2 and model.operation.state == "succeeded" else None

    model = wait_for(retrained, 240, interval=1, what="the model retrained on the new version")
    kept = "kept" in model.operation.message
    assert model.latest_version == (model_before.latest_version if kept else model.versions[-1]), model.operation.message

    # Terraform sees the new dataset version and model version as computed values: no diff.
    ws.tf("apply", "-refresh-only", "-auto-approve", "-no-color", "-input=false")
    after = ws.resources()
    assert after["stratum_dataset.traffic"]["version"] >= 2
    assert after["stratum_app.aggregate[0]"]["last_run"]["state"] == "succeeded"
    assert_no_changes(ws, "after the aggregate run")

    # Import of every app: the same arguments, and an empty plan.
    for name in APPS:
        address = f"stratum_app.{name}[0]"
        before = ws.resources()[address]
        ws.state_rm(address)
        ws.import_(address, name)
        imported = ws.resources()[address]
        volatile = ("last_run", "next_run_at", "instances")  # runs happen meanwhile
        assert {k: v for k, v in imported.items() if k not in volatile} == {k: v for k, v in before.items() if k not in volatile}
    assert_no_changes(ws, "after importing every app")

    # Destroy: nothing of any app runs on any node.
    running = [p for n in nodes.values() for p in processes_under(os.path.join(n.data_dir, "apps"))]
    assert len(running) >= 5
    ws.destroy()
    _, alive = psutil.wait_procs(running, timeout=10)
    assert not alive
    for n in nodes.values():
        assert processes_under(os.path.join(n.data_dir, "apps")) == [], n.name
    for name in APPS:
        with pytest.raises(grpc.RpcError) as e:
            c.GetApp(a.GetAppRequest(name=name))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    c.close()
