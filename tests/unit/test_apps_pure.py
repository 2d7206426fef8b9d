"""The pure parts of apps: schedules, run records, instance indexes, wiring, spec rules, and the
reconciler's plan over apps and services together."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from control_plane.apps import instances, runs, schedule, spec, wiring
from control_plane.placement.rank import Preferences
from control_plane.placement.types import Demand, NodeView
from control_plane.reconcile import Snapshot, Workload, plan
from stratum.v1 import apps_pb2 as a, models_pb2 as m, node_agent_pb2 as na


def ts(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


# -- schedules ------------------------------------------------------------------------------------

def test_due_times_are_those_after_the_last_step_up_to_now_in_the_time_zone():
    # 02:00 in Berlin (CET, UTC+1) is 01:00 UTC
    assert schedule.due("0 2 * * *", "Europe/Berlin", ts(2026, 1, 1, 0, 0), ts(2026, 1, 3, 0, 0)) == [
        ts(2026, 1, 1, 1, 0), ts(2026, 1, 2, 1, 0)]
    assert schedule.due("*/15 * * * *", "", ts(2026, 1, 1, 0, 0), ts(2026, 1, 1, 0, 0)) == []  # nothing came
    # the time that came exactly now is due; one a second later is not
    assert schedule.due("*/15 * * * *", "UTC", ts(2026, 1, 1, 0, 0), ts(2026, 1, 1, 0, 15)) == [ts(2026, 1, 1, 0, 15)]
    assert schedule.next_after("*/15 * * * *", "UTC", ts(2026, 1, 1, 0, 15)) == ts(2026, 1, 1, 0, 30)


def test_after_an_outage_the_latest_time_runs_and_earlier_ones_are_recorded_missed():
    decided = schedule.decide([1.0, 2.0, 3.0], running=False, prohibit_overlap=True)
    assert [(t, state) for t, state, _ in decided] == [(1.0, "missed"), (2.0, "missed"), (3.0, "pending")]
    assert "control plane was not running" in decided[0][2]
    assert [s for _, s, _ in schedule.decide([5.0], running=True, prohibit_overlap=True)] == ["skipped"]
    assert [s for _, s, _ in schedule.decide([5.0], running=True, prohibit_overlap=False)] == ["pending"]


@pytest.mark.parametrize("cron,why", [
    ("* * * *", "give five fields"), ("* * * * * *", "give five fields"), ("61 * * * *", "not a valid cron"),
    ("*/61 * * * *", "not a valid cron"), ("* 24 * * *", "not a valid cron"), ("* * 30 2 *", "never fires"),
    ("x" * 300, "give five fields")])
def test_bad_cron_expressions_say_why(cron, why):
    assert why in schedule.cron_problem(cron)


def test_time_zones_are_iana_names():
    assert schedule.zone_problem("") is None and schedule.zone_problem("Asia/Tokyo") is None
    for bad in ("Mars/Olympus", "../etc/passwd", "/etc/localtime", "x" * 100):
        assert "unknown time zone" in schedule.zone_problem(bad)


# -- run records ----------------------------------------------------------------------------------

def test_a_finished_run_is_final_whatever_a_node_reports_later():
    run = runs.new_run("job", 1, "node-a", reason="created")
    st = na.RunStatus(id=run["id"], state="running", attempts=1)
    st.started_at.FromSeconds(100)
    assert runs.take_report(run, st) and run["state"] == "running" and run["started_at"] == 100
    done = na.RunStatus(id=run["id"], state="failed", attempts=2, exit_code=3, log_tail="boom")
    assert runs.take_report(run, done)
    assert (run["state"], run["exit_code"], run["attempts"]) == ("failed", 3, 2)
    assert "exit code 3 after 2 attempt(s)" in run["message"]
    assert not runs.take_report(run, na.RunStatus(id=run["id"], state="succeeded", exit_code=0))  # too late
    assert run["state"] == "failed"
    assert not runs.take_report(run, done)  # the same report again changes nothing


# -- instance indexes -----------------------------------------------------------------------------

def test_instances_keep_their_index_where_their_node_keeps_room():
    assert instances.assign({}, {"b": 1, "a": 2}, 3) == {0: "a", 1: "a", 2: "b"}
    # node a lost one instance's room: index 1 moves, 0 and 2 stay
    assert instances.assign({0: "a", 1: "a", 2: "b"}, {"a": 1, "b": 1, "c": 1}, 3) == {0: "a", 1: "c", 2: "b"}
    # scaled down: the highest indexes go
    assert instances.assign({0: "a", 1: "b", 2: "c"}, {"a": 1, "b": 1}, 2) == {0: "a", 1: "b"}
    # not enough room (a pool VM still starting): the rest wait unassigned
    assert instances.assign({}, {"a": 1}, 2) == {0: "a"}


# -- wiring ---------------------------------------------------------------------------------------

def node(id, tier="edge", zone=""):
    return NodeView(id, id, tier, {"zone": zone} if zone else {}, zone=zone)


def test_the_nearest_endpoint_is_on_the_same_node_then_site_then_tier_then_any():
    here = node("e1", "edge", "north")
    cands = [(node("c1", "cloud"), "c1:1883"), (node("f1", "fog"), "f1:1883"), (node("e2", "edge"), "e2:1883"),
             (node("f2", "fog", "north"), "f2:1883")]
    assert wiring.nearest(here, cands) == "f2:1883"  # same site beats same tier
    assert wiring.nearest(here, cands + [(here, "e1:1883")]) == "e1:1883"
    assert wiring.nearest(node("e3", "edge"), cands) == "e2:1883"
    assert wiring.nearest(node("x", "cloud", "south"), cands[1:3]) == "e2:1883"  # any: by name
    assert wiring.nearest(here, []) is None


def test_cycles_in_connects_to_are_found_with_their_path():
    assert wiring.cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert wiring.cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert wiring.cycle({"x": ["x"]}) == ["x", "x"]


# -- spec rules -----------------------------------------------------------------------------------

def problems(**kw):
    return dict(spec.validate_spec(a.AppSpec(**{"name": "app", "kind": "service", "command": "true", **kw})))


def test_spec_rules_name_the_attribute():
    assert "kind" in problems(kind="daemon")
    assert "command" in problems(kind="batch", command="")
    assert "${NOPE}" in problems(args=["--port", "${NOPE}"])["args[1]"]
    assert problems(args=["--port", "${STRATUM_PORT_HTTP}"], ports={"http": 0}) == {}
    assert "set by Stratum" in problems(env={"STRATUM_X": "1"})['env["STRATUM_X"]']
    assert "<path>#<key>" in problems(secret_env={"PW": "secret/x"})['secret_env["PW"]']
    assert 'also ports["a"]' in problems(ports={"a": 1883, "b": 1883})['ports["b"]']
    assert "0 to 65535" in problems(ports={"a": 70000})['ports["a"]']
    assert "exactly one" in problems(health=a.HealthCheck(http="/", tcp="x"), ports={"x": 0})["health"]
    assert "kind = \"service\"" in problems(kind="batch", health=a.HealthCheck(tcp="x"))["health"]
    assert "periodic" in problems(schedule=a.Schedule(cron="* * * * *"))["schedule"]
    assert "schedule.cron" in problems(kind="periodic")
    assert "outputs" in problems(outputs=a.AppOutputs(dataset="d"))
    assert "runs one instance" in problems(kind="batch", count=2)["count"]
    assert "cannot connect to itself" in problems(connects_to=["app"])["connects_to[0]"]
    assert "give a number" in problems(kill_timeout_s=float("nan"))["kill_timeout"]
    assert "restart.mode" in problems(restart=a.RestartPolicy(mode="sometimes"))


# -- the plan over apps and services --------------------------------------------------------------

def test_plan_places_apps_and_services_on_one_fleet_with_ports_and_binaries():
    nodes = [NodeView("n1", "fog-1", "fog", cpu=4, memory_mb=4096, binaries=frozenset({"mosquitto"})),
             NodeView("n2", "fog-2", "fog", cpu=4, memory_mb=4096)]
    svc = Workload("service", "model", Demand(cpu=3, memory_mb=512), 1, placement={"n1": 1})
    broker = Workload("app", "broker", Demand(cpu=0.5, binaries=("mosquitto",), ports=(1883,)), 1)
    snap = Snapshot(nodes, {w.key: w for w in (svc, broker)})
    p = plan(snap, place=("app/broker",))
    assert p.placements == {"app/broker": {"n1": 1}}  # the only node with mosquitto, beside the service
    assert p.starts == [("app/broker", "n1", 1)] and p.stops == [] and p.moves == []
    # a second broker on the same fixed port has no room left anywhere with mosquitto
    snap = snap.with_workload(Workload("app", "broker", broker.demand, 1, placement={"n1": 1}))
    other = Workload("app", "broker2", broker.demand, 1)
    p = plan(snap.with_workload(other), place=("app/broker2",))
    assert "app/broker2" in p.unplaced and "port 1883 taken by app broker" in " ".join(p.unplaced["app/broker2"])
    # fog-1 goes down: the service moves to fog-2; the broker has nowhere to go (fog-2 lacks mosquitto)
    down = [NodeView("n1", "fog-1", "fog", cpu=4, memory_mb=4096, ready=False, binaries=frozenset({"mosquitto"})),
            nodes[1]]
    p = plan(Snapshot(down, snap.workloads), rebalance=True)
    assert p.placements["service/model"] == {"n2": 1} and p.moves == [("service/model", "n1", "n2")]
    assert p.placements["app/broker"] == {}


def test_a_drained_node_keeps_what_fits_nowhere_else_and_loses_what_does():
    drained = dict(ready=False, drained=True, binaries=frozenset({"mosquitto"}))
    nodes = [NodeView("n1", "fog-1", "fog", cpu=4, memory_mb=4096, **drained), NodeView("n2", "fog-2", "fog", cpu=1, memory_mb=4096)]
    svc = Workload("service", "model", Demand(cpu=1, memory_mb=512), 2, placement={"n1": 2})
    broker = Workload("app", "broker", Demand(cpu=0.5, binaries=("mosquitto",)), 1, placement={"n1": 1})
    p = plan(Snapshot(nodes, {w.key: w for w in (svc, broker)}), rebalance=True)
    # one replica fits fog-2 and moves; the other and the broker (mosquitto only on fog-1) stay
    assert p.placements == {"service/model": {"n1": 1, "n2": 1}}
    assert p.moves == [("service/model", "n1", "n2")]
    # a node down is another matter: what ran there is gone, nothing is kept on it
    down = [NodeView("n1", "fog-1", "fog", cpu=4, memory_mb=4096, ready=False), nodes[1]]
    p = plan(Snapshot(down, {w.key: w for w in (svc, broker)}), rebalance=True)
    assert p.placements == {"service/model": {"n2": 1}, "app/broker": {}}


def test_anti_affinity_names_either_kind():
    from control_plane.reconcile.snapshot import anti_affinity_keys
    nodes = [NodeView("n1", "a", "edge", cpu=2), NodeView("n2", "b", "edge", cpu=2)]
    broker = Workload("app", "broker", Demand(cpu=1), 1, placement={"n1": 1})
    svc = Workload("service", "model", Demand(cpu=1), 1, Preferences(anti_affinity=anti_affinity_keys(["broker"])))
    p = plan(Snapshot(nodes, {w.key: w for w in (broker, svc)}), place=("service/model",))
    assert p.placements["service/model"] == {"n2": 1}
