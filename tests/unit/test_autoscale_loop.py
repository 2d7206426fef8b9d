"""The live Autoscaler (control_plane/autoscale/loop.py) on a real store, registry, reconciler and
Services, in process (no daemons): the minutes two nodes report become one decision a minute,
the same one decide.py's Decider makes when fed the same minutes (as the bench's simulator feeds
it), placed through Services.scale, and kept in `Autoscaler.decisions` for the dashboard."""

from __future__ import annotations

import json
import logging
import math
import time

import numpy as np
import pytest

from control_plane.autoscale.decide import Decider
from control_plane.autoscale.loop import Autoscaler, lead_minutes
from control_plane.autoscale.optimiser import Config, Site
from control_plane.datasets import Datasets
from control_plane.join_tokens import JoinTokens
from control_plane.models import Models
from control_plane.nodes import NodeRegistry
from control_plane.packaging.store import ArtifactStore
from control_plane.reconcile import Reconciler
from control_plane.services import Services, spec_json
from control_plane.store import Store
from stratum import pki
from stratum.clock import MINUTE_S
from stratum.runtime.latency import BUCKETS_MS
from stratum.v1 import models_pb2 as m, node_agent_pb2 as na
from tests.stored_nodes import ready_edge_nodes

T0 = 29_000_000  # a unix minute


def plane(tmp_path):
    store = Store(None, str(tmp_path))
    key, cert = pki.make_ca()
    nodes = NodeRegistry(store, JoinTokens(store, pki.fingerprint(cert)), key, cert, 1e9)
    artifacts = ArtifactStore(str(tmp_path))
    reconciler = Reconciler(store, nodes)
    services = Services(store, Models(store, Datasets(store, artifacts), str(tmp_path)), nodes, reconciler, artifacts)
    ready_edge_nodes(store)
    return store, services


def sample(minute: int, requests: int) -> na.MinuteSample:
    buckets = [0] * (len(BUCKETS_MS) + 1)
    buckets[4] = requests  # 20 ms each
    return na.MinuteSample(minute=minute, requests=requests, latency_buckets=buckets, latency_sum_ms=20.0 * requests)


@pytest.mark.parametrize("late_every", [7, 3])
def test_the_live_loop_decides_each_minute_as_the_simulator_does_and_records_it(tmp_path, caplog, late_every):
    caplog.set_level(logging.DEBUG, logger="stratum.autoscale")
    store, services = plane(tmp_path)
    spec = m.ServiceSpec(name="svc", model="none", requirements=m.Requirements(cpu=1.0, memory_mb=512),
                         slo=m.Slo(p95_latency_ms=500), placement=m.PlacementPreferences(pack=True),
                         scaling=m.Scaling(mode="predictive", min=1, max=6, target_rpm=60))
    store.put_doc("services", "svc", {"name": "svc", "spec": spec_json(spec), "placement": {"node-1": 1},
                                      "deleting": False, "created_at": time.time()})
    auto = Autoscaler(services)
    rng = np.random.default_rng(1)
    rate = 40 + 150 * np.clip(np.sin(np.linspace(0, math.pi, 240)), 0, None)  # up to 190: past 2 nodes' room (240)
    counts = rng.poisson(rate)
    lead = lead_minutes(None, False)
    sim = Decider("predictive", lead)
    configs = [Config("replica", 1.0, 512, 1, 60.0)]
    sites = [Site("edge-1", 2.0, 4096), Site("edge-2", 2.0, 4096)]
    replicas, covered, sites_used = [], [], set()
    provisioned, agree, minutes = 60.0, 0, 0  # the one replica the service starts with
    late = 0
    for i, n in enumerate(counts):
        minute = T0 + i
        if i % late_every == late_every // 2 + 1:  # after a late tick: the simulator decides the one skipped too
            sim.observe(minute - 1, counts[i - 1])
            provisioned = sim.decide(minute, provisioned, configs, sites, 1, 6).choice.capacity_rpm
            late += 1
        # the minute is split over the two nodes that run the service, as their routers count it
        services.series.add("svc", [sample(minute, int(n) // 2)])
        services.series.add("svc", [sample(minute, int(n) - int(n) // 2)])
        for node in ("node-1", "node-2"):
            services.series.reported("svc", node, (minute + 1) * MINUTE_S + 0.5)
        if i % late_every == late_every // 2:
            continue  # a late tick: this minute is decided with the next one
        auto.tick((minute + 1) * MINUTE_S + 1)
        auto.tick((minute + 1) * MINUTE_S + 2)  # a second tick in the minute decides nothing new
        live = auto.decisions["svc"]
        sim.observe(minute, n)
        d = sim.decide(minute + 1, provisioned, configs, sites, 1, 6)
        provisioned = d.choice.capacity_rpm
        replicas.append(live["replicas"])
        covered.append(d.choice.covers)
        sites_used.update(d.choice.sites)
        minutes += 1
        agree += (live["replicas"], live["forecast_rpm"]) == (d.choice.replicas, round(d.need_rpm, 3))
        assert live["minute"] == minute + 1 and live["capacity_rpm"] == 60.0 * live["replicas"]
        assert json.loads(json.dumps(live)) == live  # plain values
    assert agree == minutes, (agree, minutes)
    # A late tick decides two minutes in one pass: the second is judged against the first one's
    # decision (the simulator's reference), not against what ran before both.
    logged = [r.fields for r in caplog.records if r.getMessage() == "autoscale decision"]
    by_minute = {f["minute"]: f for f in logged}
    pairs = [(by_minute[T0 + i]["capacity_rpm"], by_minute[T0 + i + 1]["provisioned_rpm"])  # (first, second)
             for i in range(len(counts)) if i % late_every == late_every // 2 + 1]
    assert pairs and all(second == pytest.approx(first, abs=1e-3) for first, second in pairs), pairs
    doc = store.get_doc("services", "svc")
    assert doc["scaled"] == auto.decisions["svc"]["replicas"]
    assert sum(doc["placement"].values()) == doc["scaled"]
    # it scaled out onto the second node, ran short of room at the peak (4 replicas fit), and back in
    assert max(replicas) == 4 and replicas[-1] < 4 and any(not x for x in covered)
    assert {"edge-1", "edge-2"} <= set(sites_used)
    assert set(auto.decisions["svc"]) == {"minute", "forecast_rpm", "capacity_rpm", "replicas", "size", "reason", "changed"}


def test_a_report_taken_before_a_minute_ended_does_not_complete_that_minute(tmp_path):
    # A node took its minutes a moment before a minute ended; the report arrived after it ended. That
    # minute is not in the report, so it is not complete: deciding on it would count it as idle.
    store, services = plane(tmp_path)
    now = time.time()
    current = int(now // MINUTE_S)
    status = na.ServiceStatus(service="svc", state="ready", endpoint="http://127.0.0.1:1")
    taken = current * MINUTE_S - 0.5  # half a second before the current minute began
    services.on_report("node-1", na.ServiceReport(services=[status], minutes_taken_at=taken))
    assert services.series.complete_to("svc", {"node-1"}) == current - 2  # the minute that ended since: not in
    # An older node says nothing of when: its report counts from when it arrived, as before.
    services.on_report("node-1", na.ServiceReport(services=[status]))
    assert services.series.complete_to("svc", {"node-1"}) == current - 1
    # A node whose clock runs ahead cannot complete minutes that have not ended here.
    services.on_report("node-1", na.ServiceReport(services=[status], minutes_taken_at=now + 10 * MINUTE_S))
    assert services.series.complete_to("svc", {"node-1"}) == current - 1
