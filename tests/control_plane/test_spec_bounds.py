"""Every number in a service or app spec has both bounds: NaN, Inf, negative and huge values are
refused on their field (at plan time and at create), and a message never repeats more than a
short cut of what was sent. One real control plane and one node (so a well-formed spec passes
the plan-time analysis) for the module."""

from __future__ import annotations

import math

import grpc
import pytest

from stratum.v1 import apps_pb2 as a, models_pb2 as m, plans_pb2 as p
from tests.control_plane.test_api import violations
from tests.harness import ControlPlane, NodeDaemon, wait_for

S = grpc.StatusCode
HUGE = "x" * 8192
NAN, INF = math.nan, math.inf


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("spec-bounds"))
    # a 30 s node timeout: nothing here is about liveness, and a loaded machine delays heartbeats past 3 s
    cp_ = ControlPlane(work, env={"VAULT_ADDR": "", "VAULT_TOKEN": ""}, node_timeout="30s").start()
    node = NodeDaemon(work, "edge-1", cp_.endpoint, cp_.join_token, tier="edge").start()
    try:
        yield cp_
    finally:
        node.stop()
        cp_.stop()


@pytest.fixture(scope="module")
def c(plane):
    client = plane.client()
    wait_for(lambda: (client.nodes().get("edge-1") or None) and client.nodes()["edge-1"].state == "ready", 60,
             what="node edge-1 ready")
    yield client
    client.close()


def refused(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        call(request)
    return e.value


def changed(spec, changes: dict):
    """`spec` with each change applied; a key names a field path with "__" between the parts."""
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = spec
        for part in parents:
            target = getattr(target, part)
        if isinstance(value, list):
            getattr(target, leaf).extend(value)
        elif isinstance(value, dict):
            getattr(target, leaf).update(value)
        elif hasattr(value, "DESCRIPTOR"):
            getattr(target, leaf).CopyFrom(value)
        else:
            setattr(target, leaf, value)
    return spec


def service(**changes) -> m.ServiceSpec:
    return changed(m.ServiceSpec(name="bounded", model="some-model", requirements=m.Requirements(cpu=0.1, memory_mb=64)),
                   changes)


# (attribute path as the error names it, the proto path, the bad value)
SERVICE_CASES = [
    ("replicas", "replicas", -1), ("replicas", "replicas", 65), ("replicas", "replicas", 2**31 - 1),
    ("workers", "workers", -1), ("workers", "workers", 33),
    ("requirements.cpu", "requirements__cpu", NAN), ("requirements.cpu", "requirements__cpu", INF),
    ("requirements.cpu", "requirements__cpu", -0.5), ("requirements.cpu", "requirements__cpu", 1e12),
    ("requirements.memory_mb", "requirements__memory_mb", -1), ("requirements.memory_mb", "requirements__memory_mb", 2**62),
    ("requirements.gpu", "requirements__gpu", 2**31 - 1), ("requirements.gpu_memory_mb", "requirements__gpu_memory_mb", -1),
    ("requirements.arch", "requirements__arch", HUGE),
    ("slo.p95_latency_ms", "slo__p95_latency_ms", NAN), ("slo.p95_latency_ms", "slo__p95_latency_ms", INF),
    ("slo.p95_latency_ms", "slo__p95_latency_ms", -1.0), ("slo.p95_latency_ms", "slo__p95_latency_ms", 1e300),
    ("scaling.min", "scaling__min", -1), ("scaling.min", "scaling__min", 65),
    ("scaling.max", "scaling__max", -1), ("scaling.max", "scaling__max", 2**31 - 1),
    ("scaling.target_rpm", "scaling__target_rpm", NAN), ("scaling.target_rpm", "scaling__target_rpm", -INF),
    ("scaling.target_rpm", "scaling__target_rpm", 1e15),
    ("scaling.zero_after", "scaling__zero_after_s", NAN), ("scaling.zero_after", "scaling__zero_after_s", INF),
    ("scaling.zero_after", "scaling__zero_after_s", -60.0), ("scaling.zero_after", "scaling__zero_after_s", 1e18),
    ("routing.on_demand_replicas", "routing__on_demand_replicas", -1),
    ("routing.on_demand_replicas", "routing__on_demand_replicas", 17),
    ("routing.idle_stop", "routing__idle_stop_s", NAN), ("routing.idle_stop", "routing__idle_stop_s", INF),
    ("routing.idle_stop", "routing__idle_stop_s", -1.0), ("routing.idle_stop", "routing__idle_stop_s", 1e18),
    ("routing.ood_share_max", "routing__ood_share_max", NAN), ("routing.ood_share_max", "routing__ood_share_max", 1.5),
]


@pytest.mark.parametrize("field, path, value", SERVICE_CASES, ids=[f"{c[0]}={c[2]!r:.12}" for c in SERVICE_CASES])
def test_a_service_number_out_of_bounds_is_refused_on_its_field(c, field, path, value):
    changes = {path: value}
    if path.startswith("scaling__"):
        changes["scaling__mode"] = "predictive"  # zero_after and the bounds apply to a scaled service
    if path.startswith("routing__"):
        changes["routing__mode"] = "straightline"
    spec = service(**changes)
    for call, request in ((c.ValidateService, p.ValidateServiceRequest(service=spec)), (c.CreateService, spec)):
        e = refused(call, request)
        assert e.code() == S.INVALID_ARGUMENT, e.details()
        v = violations(e)
        assert field in v, v
        assert len(e.details()) < 400
        if isinstance(value, float) or isinstance(value, int):
            assert v[field].startswith(f"{field} = "), v[field]
    assert refused(c.GetService, m.GetServiceRequest(name="bounded")).code() == S.NOT_FOUND  # nothing stored


def test_values_at_the_bounds_pass_the_plan(c):
    """The upper bounds are what they say: a spec at every one of them is a valid plan."""
    spec = service(workers=32, slo__p95_latency_ms=3_600_000.0, scaling__mode="predictive", scaling__min=1,
                   scaling__max=64, scaling__target_rpm=1e9, scaling__zero_after_s=3650 * 86400.0,
                   routing__mode="straightline", routing__on_demand_replicas=16, routing__idle_stop_s=3650 * 86400.0,
                   routing__ood_share_max=1.0)
    c.ValidateService(p.ValidateServiceRequest(service=spec))
    e = refused(c.ValidateService, p.ValidateServiceRequest(service=service(scaling__mode="predictive", scaling__min=8,
                                                                            scaling__max=4)))
    assert "scaling.max = 4: give 8 to 64 replicas (no fewer than scaling.min)" in violations(e)["scaling.max"]


def test_echoed_service_input_is_cut(c):
    spec = service(name="ok-name", model=HUGE, scaling__mode=HUGE, routing__mode=HUGE)
    spec.connects_to.extend([HUGE, "ok-name", "peer", "peer"])
    e = refused(c.ValidateService, p.ValidateServiceRequest(service=spec))
    v = violations(e)
    for field in ("model", "scaling.mode", "routing.mode", "connects_to[0]"):
        assert "(8192 characters)" in v[field] and len(v[field]) < 300, (field, v[field])
    assert "cannot connect to itself" in v["connects_to[1]"] and "listed twice" in v["connects_to[3]"]
    e = refused(c.UpdateService, service(name=HUGE))  # the lookup of a huge name
    assert e.code() == S.NOT_FOUND and len(e.details()) < 200


def test_a_planned_service_with_nan_does_not_break_another_services_plan(c):
    good = service(name="good")
    bad = service(name="bad", requirements__cpu=NAN, requirements__memory_mb=2**62)
    e = refused(c.ValidateService, p.ValidateServiceRequest(service=bad, planned=[good]))
    assert e.code() == S.INVALID_ARGUMENT and {"requirements.cpu", "requirements.memory_mb"} <= set(violations(e))
    # The bad one is reported on its own resource; the good one's plan does not fail for it.
    c.ValidateService(p.ValidateServiceRequest(service=good, planned=[bad]))


def app(**changes) -> a.AppSpec:
    return changed(a.AppSpec(name="bounded-app", kind="service", command="sleep", args=["600"], ports={"http": 0}), changes)


APP_CASES = [
    ("count", "count", -1), ("count", "count", 65),
    ("kill_timeout", "kill_timeout_s", NAN), ("kill_timeout", "kill_timeout_s", INF), ("kill_timeout", "kill_timeout_s", -1.0),
    ("kill_timeout", "kill_timeout_s", 1e9),
    ("health.interval", "health__interval_s", NAN), ("health.interval", "health__interval_s", -1.0),
    ("health.interval", "health__interval_s", 1e12), ("health.timeout", "health__timeout_s", INF),
    ("health.grace", "health__grace_s", -INF), ("health.failures", "health__failures", -1),
    ("health.failures", "health__failures", 101),
    ("restart.attempts", "restart__attempts", -2), ("restart.attempts", "restart__attempts", 2**31 - 1),
    ("restart.interval", "restart__interval_s", NAN), ("restart.interval", "restart__interval_s", 1e12),
    ("restart.delay", "restart__delay_s", INF), ("restart.delay", "restart__delay_s", -5.0),
    ("requirements.cpu", "requirements__cpu", NAN), ("requirements.memory_mb", "requirements__memory_mb", 2**62),
]


@pytest.mark.parametrize("field, path, value", APP_CASES, ids=[f"{c[0]}={c[2]!r:.12}" for c in APP_CASES])
def test_an_app_number_out_of_bounds_is_refused_on_its_field(c, field, path, value):
    changes = {path: value}
    if path.startswith("health__"):
        changes["health__tcp"] = "http"
    spec = app(**changes)
    for call, request in ((c.ValidateApp, p.ValidateAppRequest(app=spec)), (c.CreateApp, spec)):
        e = refused(call, request)
        assert e.code() == S.INVALID_ARGUMENT, e.details()
        v = violations(e)
        assert field in v and v[field].startswith(f"{field} = "), v


@pytest.mark.parametrize("port", [-1, 65536, 2**31 - 1])
def test_an_app_port_outside_0_to_65535_is_refused(c, port):
    e = refused(c.ValidateApp, p.ValidateAppRequest(app=app(ports={"http": port})))
    assert 'ports["http"]' in violations(e) and "from 0 to 65535" in violations(e)['ports["http"]']


def test_echoed_app_input_is_cut(c):
    spec = app(health__exec=["check", HUGE * 2])
    spec.connects_to.extend([HUGE] + [f"t{i}" for i in range(70)])
    e = refused(c.ValidateApp, p.ValidateAppRequest(app=spec))
    v = violations(e)
    assert "at most 4096" in v["health.exec[1]"]
    assert "at most 64" in v["connects_to"] and "(8192 characters)" in v["connects_to[0]"]
    assert len(e.details().encode()) <= 1024
    ok = app(ports={"http": 65535}, kill_timeout_s=3600.0, restart=a.RestartPolicy(attempts=1000, interval_s=7 * 86400.0,
                                                                                  delay_s=3600.0))
    c.ValidateApp(p.ValidateAppRequest(app=ok))  # every bound is inclusive
