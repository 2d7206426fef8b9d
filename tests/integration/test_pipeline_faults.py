"""Faults in the smart-traffic pipeline deployed through the API (real control plane, real node
daemons, the programs of modules/examples/smart-traffic/apps/ as `stratum_app`s, a real Mosquitto):

  (a) the stream processor killed with SIGKILL: restarted by its policy, and every reading the
      broker acknowledged reaches the store exactly once (its persistent session, QoS 1);
  (b) the node holding the broker cut off the network: the broker moves to the other fitting node,
      the sensor and the processor are re-pointed (a new STRATUM_BROKER_URL), readings flow again;
  (c) the control plane killed with SIGKILL during a periodic run, back after the run ended and
      the node back as late as its reconnect backoff allows: no run doubled, none lost, the
      interrupted one ends succeeded with its output as the dataset's next version;
  (d) the control plane down for two minutes: edge and fog keep flowing, and once it is back the
      nodes reconnect without anything being restarted.

The congestion model is a stand-in, a small HTTP app deployed like the others (training,
packaging and serving the real one costs more than these tests can spend; tests/pipeline/ and
tests/provider/test_e2e_pipeline.py use the real one): faults here are about the pipeline's parts.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import time
from pathlib import Path

import psutil
import pytest

from provider import artifact as packing
from stratum.v1 import apps_pb2 as a, datasets_pb2 as ds, models_pb2 as m
from tests.harness import ControlPlane, NodeDaemon, wait_for
from tests.lifecycle import upload
from tests.pipeline.conftest import APPS, TRAFFIC_CSV, db_rows

RATE = 20  # readings per second per intersection
INTERSECTIONS = "i-01,i-02"

STANDIN_MODEL = '''"""A stand-in for the congestion model service: POST /predict as BentoML answers it."""
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def level(x):
    q = float(x.get("vehicles_per_min") or 0)
    return "low" if q < 30 else "medium" if q < 55 else "high"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self._send(200, {"ok": True})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        self._send(200, {"predictions": [level(x) for x in body.get("instances", [])]})

    def _send(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer((os.environ["STRATUM_HOST"], int(os.environ["STRATUM_PORT_HTTP"])), Handler).serve_forever()
'''


# -- the API ------------------------------------------------------------------------------------
def get(c, name) -> a.App:
    return c.GetApp(a.GetAppRequest(name=name))


def wait_state(c, name, state="ready", timeout=60, logs=()) -> a.App:
    def ok():
        app = get(c, name)
        if app.state == "failed" and state != "failed":
            raise AssertionError(f"app {name} failed: {app.message}")
        return app if app.state == state else None
    try:
        return wait_for(ok, timeout, interval=0.2, what=f"app {name} {state}")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{show(logs)}") from None


def show(processes) -> str:
    """The tail of each harness process's log (node daemons, the control plane), for failures."""
    return "\n".join(f"--- {p.log_path}:\n{p.log()[-3000:]}" for p in processes)


def wait_nodes(c, names, timeout=60) -> None:
    wait_for(lambda: all(c.nodes().get(n) and c.nodes()[n].state == "ready" for n in names), timeout,
             what=f"nodes {', '.join(names)} ready")


def artifacts(c, tmp_path: Path) -> tuple[a.Artifact, a.Artifact]:
    """The apps directory (packed as the provider packs a directory) and the model stand-in (a file),
    uploaded by digest."""
    tree = tmp_path / "artifact" / "apps"
    shutil.copytree(APPS, tree, ignore=shutil.ignore_patterns("__pycache__"))
    buf = io.BytesIO()
    packing.pack(str(tree), buf)
    data = buf.getvalue()
    apps = a.Artifact(sha256=upload(c, data), size=len(data), name="apps", directory=True)
    model = STANDIN_MODEL.encode()
    return apps, a.Artifact(sha256=upload(c, model), size=len(model), name="congestion.py")


def service(name, script, art, *, ports=None, health=None, connects_to=(), env=None, tiers=(), labels=None,
            binaries=()) -> a.AppSpec:
    return a.AppSpec(name=name, kind="service", command="python3", args=[script], artifact=art, ports=ports or {},
                     health=health, connects_to=list(connects_to), env=env or {},
                     restart=a.RestartPolicy(attempts=3, interval_s=60, delay_s=0.5),
                     requirements=m.Requirements(tiers=list(tiers), labels=labels or {}, binaries=list(binaries)))


def deploy_fog(c, tmp_path: Path, store_url: str) -> a.Artifact:
    """The model stand-in, the broker and the processor, ready (subscribed: from now on the broker
    keeps every reading for the processor's session). The sensor comes next, by the caller."""
    apps, model = artifacts(c, tmp_path)
    c.CreateApp(a.AppSpec(name="congestion", kind="service", command="python3", args=["congestion.py"], artifact=model,
                          ports={"http": 0}, health=a.HealthCheck(http="/healthz", interval_s=0.5, grace_s=20),
                          requirements=m.Requirements(labels={"stream": "yes"})))
    c.CreateApp(service("broker", "broker.py", apps, ports={"mqtt": 0}, tiers=["fog"], labels={"mq": "yes"},
                        binaries=["mosquitto"], health=a.HealthCheck(tcp="mqtt", interval_s=0.5, grace_s=20)))
    c.CreateApp(service("processor", "processor.py", apps, ports={"http": 0}, tiers=["fog"], labels={"stream": "yes"},
                        connects_to=["broker", "congestion"], env={"HISTORY_STORE": store_url, "WINDOW_S": "1"},
                        health=a.HealthCheck(http="/healthz", interval_s=0.5, grace_s=30)))
    for name in ("congestion", "broker", "processor"):
        wait_state(c, name, timeout=90)
    return apps


def sensor_spec(apps: a.Artifact, **env) -> a.AppSpec:
    return service("sensor", "sensor.py", apps, tiers=["edge"], connects_to=["broker"],
                   env={"INTERSECTIONS": INTERSECTIONS, "RATE": str(RATE), "SEED": "5", **env})


def observations(url: str) -> int:
    return db_rows(url, "SELECT COUNT(*) FROM observations")[0][0]


def app_processes(node: NodeDaemon, app: str) -> list[psutil.Process]:
    """Living processes of an app's instance 0 on a node (those whose working directory is its)."""
    workdir = os.path.join(node.data_dir, "apps", f"{app}-0")
    out = []
    for p in psutil.process_iter(["cwd"]):
        try:
            if (p.info["cwd"] or "").startswith(workdir) and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def instance_log(c, name) -> list[dict]:
    """An app's instance log streamed from its node (StreamAppLogs), as JSON events."""
    data = b"".join(ch.data for ch in c.stub.StreamAppLogs(a.StreamAppLogsRequest(name=name, tail_bytes=4 << 20),
                                                             metadata=c.md, timeout=20))
    out = []
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def seqs(url: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for name, seq in db_rows(url, "SELECT intersection, seq FROM observations ORDER BY intersection, seq"):
        out.setdefault(name, []).append(seq)
    return out


# -- (a) --------------------------------------------------------------------------------------------
def test_a_killed_processor_is_restarted_and_loses_no_acknowledged_reading(control_plane, start_node, tmp_path):
    c = control_plane.client()
    edge = start_node("edge-1", tier="edge")
    fog = start_node("fog-1", tier="fog", labels={"mq": "yes", "stream": "yes"})
    wait_nodes(c, ["edge-1", "fog-1"])
    store = f"sqlite:///{tmp_path / 'history.db'}"
    apps = deploy_fog(c, tmp_path, store)

    # The sensor as a batch app: MAX_MESSAGES readings per intersection, then it waits for the
    # broker's acknowledgements and exits (its run succeeds).
    total = 20 * RATE
    spec = sensor_spec(apps, MAX_MESSAGES=str(total))
    spec.kind = "batch"
    c.CreateApp(spec)
    wait_for(lambda: observations(store) >= 2 * RATE, 60, what="readings stored before the crash")

    (proc,) = app_processes(fog, "processor")
    proc.send_signal(signal.SIGKILL)
    at_kill = observations(store)
    app = wait_for(lambda: (x := get(c, "processor")).instances[0].restarts == 1 and x.state == "ready" and x, 60,
                   what="the processor restarted by its policy")
    assert app.instances[0].node_name == "fog-1" and proc.pid not in {p.pid for p in app_processes(fog, "processor")}

    run = wait_for(lambda: (r := get(c, "sensor").last_run).state in ("succeeded", "failed") and r, 90,
                   what="the sensor to finish")
    assert run.state == "succeeded", run.log_tail
    final = [json.loads(line) for line in run.log_tail.splitlines() if line.startswith("{")]
    last_stats = [e for e in final if e.get("event") == "stats"][-1]
    assert last_stats["published"] == last_stats["acked"] == 2 * total  # every reading acknowledged by the broker
    assert at_kill < 2 * total  # the crash came mid-stream

    want = {name: list(range(1, total + 1)) for name in INTERSECTIONS.split(",")}
    wait_for(lambda: seqs(store) == want, 60, what=f"seq 1..{total} of both intersections in the store")
    assert observations(store) == 2 * total  # exactly once
    events = instance_log(c, "processor")
    connects = [e for e in events if e.get("event") == "connected"]
    assert [e["session_present"] for e in connects] == [False, True]  # the restarted one found its session
    assert db_rows(store, "SELECT COUNT(*) FROM decisions WHERE source = 'model'")[0][0] > 0
    assert get(c, "broker").instances[0].restarts == 0 and edge.running


# -- (b) --------------------------------------------------------------------------------------------
def broker_url_of(node: NodeDaemon, app: str) -> str:
    (proc,) = app_processes(node, app)
    return proc.environ()["STRATUM_BROKER_URL"]


@pytest.mark.netns
def test_b_the_broker_moves_off_a_lost_node_and_its_clients_follow(tmp_path, test_network):
    """Two fog hosts (network namespaces) may hold the broker; the sensor (edge) and the processor
    and model (fog, in the root namespace) reach it over the bridge. The broker's host is cut off."""
    hosts = {"fog-a": test_network.add_host(), "fog-b": test_network.add_host()}
    plane = ControlPlane(str(tmp_path), host=test_network.gateway).start()
    nodes: dict[str, NodeDaemon] = {}
    try:
        for name, host in hosts.items():
            nodes[name] = NodeDaemon(str(tmp_path), name, plane.endpoint, plane.join_token, tier="fog",
                                     labels={"mq": "yes"}, netns=host.netns,
                                     extra=["--serve-host", host.address]).start()
        nodes["edge-1"] = NodeDaemon(str(tmp_path), "edge-1", plane.endpoint, plane.join_token, tier="edge").start()
        nodes["fog-0"] = NodeDaemon(str(tmp_path), "fog-0", plane.endpoint, plane.join_token, tier="fog",
                                    labels={"stream": "yes"}).start()
        c = plane.client()
        wait_nodes(c, list(nodes))
        store = f"sqlite:///{tmp_path / 'history.db'}"
        apps = deploy_fog(c, tmp_path, store)
        c.CreateApp(sensor_spec(apps))
        wait_state(c, "sensor")
        wait_for(lambda: observations(store) >= 2 * RATE, 60, what="readings flowing")

        lost = get(c, "broker").instances[0].node_name
        spare = ({"fog-a", "fog-b"} - {lost}).pop()
        old_url = f"mqtt://{hosts[lost].address}:"
        assert broker_url_of(nodes["edge-1"], "sensor").startswith(old_url)
        assert broker_url_of(nodes["fog-0"], "processor").startswith(old_url)
        sensor_pid = app_processes(nodes["edge-1"], "sensor")[0].pid

        hosts[lost].link_down()
        wait_for(lambda: c.nodes()[lost].state == "down", 30, what=f"{lost} marked down")
        everyone = [plane, *nodes.values()]
        app = wait_state(c, "broker", timeout=60, logs=everyone)
        assert app.instances[0].node_name == spare
        (address,) = app.endpoints["mqtt"].addresses
        new_url = f"mqtt://{address}"
        assert address.startswith(hosts[spare].address + ":")
        for consumer, node in (("sensor", "edge-1"), ("processor", "fog-0")):  # re-pointed: restarted with the new URL
            wait_for(lambda: broker_url_of(nodes[node], consumer) == new_url, 60, what=f"{consumer} re-pointed")
            wait_state(c, consumer, logs=everyone)
        assert app_processes(nodes["edge-1"], "sensor")[0].pid != sensor_pid

        # flow resumes: readings the sensor sends now (seqs after those stored before) reach the store
        top = dict(db_rows(store, "SELECT intersection, MAX(seq) FROM observations GROUP BY intersection"))
        wait_for(lambda: all(v > top[k] + RATE for k, v in db_rows(
            store, "SELECT intersection, MAX(seq) FROM observations GROUP BY intersection")), 60,
            what="new readings stored after the move")
        assert nodes[lost].running  # cut off, not dead: it still runs what it had

        # the host comes back: its daemon reconnects and stops the broker it no longer holds
        hosts[lost].link_up()
        wait_for(lambda: c.nodes()[lost].state == "ready", 60, what=f"{lost} back")
        wait_for(lambda: not app_processes(nodes[lost], "broker") or get(c, "broker").instances[0].node_name == lost,
                 60, what=f"the stale broker on {lost} stopped")
        brokers = [n for n in hosts if app_processes(nodes[n], "broker")]
        assert len(brokers) == 1, brokers
    finally:
        for n in nodes.values():
            n.stop()
        plane.stop()


# -- (c) --------------------------------------------------------------------------------------------
def add_readings(url: str, seq_from: int, n: int) -> None:
    """n readings of each intersection into the history store, as the processor stores them."""
    import history
    import traffic

    rows = [{**traffic.reading(5, name, seq), "ts": time.time()}
            for seq in range(seq_from, seq_from + n) for name in INTERSECTIONS.split(",")]
    s = history.open_store(url)
    try:
        s.add_observations(rows)
    finally:
        s.close()


def runs_of(c, name) -> list[a.AppRun]:
    return list(c.ListAppRuns(a.ListAppRunsRequest(name=name)).runs)


def test_c_a_control_plane_killed_during_a_periodic_run_neither_doubles_nor_loses_it(control_plane, start_node,
                                                                                     tmp_path):
    c = control_plane.client()
    node = start_node("cloud-1", tier="cloud")
    wait_nodes(c, ["cloud-1"])
    store = f"sqlite:///{tmp_path / 'history.db'}"
    add_readings(store, 1, 60)  # an hour of readings (one a simulated minute): 4 slots per intersection
    csv_bytes = TRAFFIC_CSV.read_bytes()
    c.CreateDataset(ds.DatasetSpec(name="traffic", source="file://traffic.csv", blob_sha256=upload(c, csv_bytes),
                                   target="congestion"))
    base = c.GetDataset(ds.GetDatasetRequest(name="traffic"))
    apps, _ = artifacts(c, tmp_path)
    # the batch job of the pipeline, a few seconds long (so the control plane can die under it)
    c.CreateApp(a.AppSpec(name="aggregate", kind="periodic", command="bash",
                          args=["-c", "echo aggregating; sleep 6; exec python3 aggregate.py"], artifact=apps,
                          env={"HISTORY_STORE": store}, schedule=a.Schedule(cron="* * * * *", prohibit_overlap=True),
                          outputs=a.AppOutputs(dataset="traffic", mode="append"),
                          requirements=m.Requirements(tiers=["cloud"])))
    wait_state(c, "aggregate")
    wait_for(lambda: get(c, "aggregate").last_run.state == "running", 90, interval=0.2, what="the first run running")

    control_plane.kill()  # SIGKILL mid-run; down until after the run ended (its output waits on the node)
    time.sleep(10)
    # The node comes back as late as its reconnect backoff allows (5 s at most, node_daemon/agent.py):
    # paused across the restart for longer than the node timeout (3 s here), shorter than that cap.
    node.signal(signal.SIGSTOP)
    try:
        control_plane.start()
        time.sleep(4)
    finally:
        node.signal(signal.SIGCONT)
    c = control_plane.client()
    everyone = [control_plane, node]
    try:
        run = wait_for(lambda: (r := get(c, "aggregate").last_run).state not in ("pending", "running") and r, 60,
                       what="the interrupted run to end")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{show(everyone)}") from None
    assert (run.number, run.state, run.attempts, run.exit_code) == (1, "succeeded", 1, 0), (run, show(everyone))
    assert run.log_tail.count("aggregating") == 1  # run once, not rerun by the node
    after_first = c.GetDataset(ds.GetDatasetRequest(name="traffic"))
    assert (run.dataset_version, after_first.version) == (base.version + 1, base.version + 1)
    assert after_first.row_count == base.row_count + 2 * 4
    assert [r.number for r in runs_of(c, "aggregate")] == [1]  # the restarted control plane did not record it again

    add_readings(store, 61, 60)  # the next hour, for the next run
    runs = wait_for(lambda: (rs := runs_of(c, "aggregate")) and rs[0].number == 2 and rs[0].state == "succeeded"
                    and rs, 90, interval=0.5, what="the next scheduled run")
    assert [(r.number, r.state) for r in runs] == [(2, "succeeded"), (1, "succeeded")]  # none missed, skipped or lost
    first, second = (r.scheduled_for.ToSeconds() for r in reversed(runs))
    assert second - first == 60  # consecutive minutes: each scheduled time once
    final = c.GetDataset(ds.GetDatasetRequest(name="traffic"))
    assert (runs[0].dataset_version, final.version, final.row_count) == (base.version + 2, base.version + 2,
                                                                         base.row_count + 4 * 4)


# -- (d) --------------------------------------------------------------------------------------------
OUTAGE_S = 120


def test_d_edge_and_fog_keep_flowing_while_the_control_plane_is_down(control_plane, start_node, tmp_path):
    c = control_plane.client()
    nodes = {"edge-1": start_node("edge-1", tier="edge"),
             "fog-1": start_node("fog-1", tier="fog", labels={"mq": "yes", "stream": "yes"})}
    wait_nodes(c, list(nodes))
    store = f"sqlite:///{tmp_path / 'history.db'}"
    apps = deploy_fog(c, tmp_path, store)
    c.CreateApp(sensor_spec(apps))
    wait_state(c, "sensor")
    wait_for(lambda: observations(store) >= 2 * RATE, 60, what="readings flowing")
    names = ("congestion", "broker", "processor", "sensor")

    def pids() -> dict[str, set[int]]:
        node_of = {n: get(c, n).instances[0].node_name for n in names}
        return {n: {p.pid for p in app_processes(nodes[node_of[n]], n)} for n in names}

    before = pids()
    assert all(before.values()), before
    restarts = {n: get(c, n).instances[0].restarts for n in names}

    control_plane.kill()
    seen = [observations(store)]
    deadline = time.monotonic() + OUTAGE_S
    while time.monotonic() < deadline:  # the outage lasts OUTAGE_S; the store must grow throughout it
        time.sleep(min(20, max(0.0, deadline - time.monotonic())))
        seen.append(observations(store))
    assert all(later > earlier for earlier, later in zip(seen, seen[1:])), seen
    assert all(node.running for node in nodes.values())
    decisions_at_restart = db_rows(store, "SELECT COUNT(*) FROM decisions WHERE source = 'model'")[0][0]

    control_plane.start()
    c = control_plane.client()
    wait_nodes(c, list(nodes))
    for n in names:
        wait_state(c, n, logs=[control_plane, *nodes.values()])
    # a few heartbeats and pushes later, still the very same processes: nothing was restarted
    time.sleep(5)
    assert pids() == before
    assert {n: get(c, n).instances[0].restarts for n in names} == restarts
    grown = observations(store)
    wait_for(lambda: observations(store) > grown, 30, what="readings still flowing after the control plane came back")
    assert db_rows(store, "SELECT COUNT(*) FROM decisions WHERE source = 'model'")[0][0] > decisions_at_restart
    # and none missing: each intersection's readings from its first seq on, with no gap
    stored = seqs(store)
    assert set(stored) == set(INTERSECTIONS.split(","))
    assert all(v == list(range(1, len(v) + 1)) for v in stored.values())
