"""A service that leaves a node (scaled in, moved, deleted) still has its last minutes reported:
the requests its endpoint answered in the minute it left, and in an ended minute no report had
carried yet, were lost with its router, and the control plane's series came up short."""

from __future__ import annotations

import asyncio
import time

from control_plane.services import Services
from control_plane.autoscale.metrics import ServiceSeries
from node_daemon.replicas.cache import BentoCache
from node_daemon.services import ServiceManager, _State
from stratum.clock import minute_of
from stratum.runtime.latency import MinuteMetrics


class Router:
    def __init__(self):
        self.minutes, self.port, self.backends = MinuteMetrics(), 0, {}

    def stats(self):
        return {"requests": 0, "failures": 0}


class Service:
    """What ServiceManager._remove touches of a LocalService."""

    def __init__(self):
        self.router, self.replicas, self.destroyed = Router(), [], False

    async def destroy(self):
        self.destroyed = True


def test_drain_hands_out_the_current_minute_too_and_once():
    m = MinuteMetrics()
    m.record(60.0, 0.01)
    m.record(125.0, 0.01)
    m.record(130.0, 0.01)
    assert [(x["minute"], x["requests"]) for x in m.drain()] == [(1, 1), (2, 2)]
    assert m.drain() == [] and m.take(1e9) == []


def test_a_removed_service_reports_its_last_minutes_once_and_the_control_plane_adds_them(tmp_path):
    mgr = ServiceManager(None, BentoCache(tmp_path / "cache", max_bytes=1 << 20), None)
    svc = Service()
    now = time.time()
    svc.router.minutes.record(now - 60, 0.01)  # an ended minute no report has carried yet
    for _ in range(3):
        svc.router.minutes.record(now, 0.01)  # the minute it leaves in
    mgr.services["replay"] = _State(svc)
    asyncio.run(mgr._remove("replay"))
    assert svc.destroyed

    report = mgr.status()
    (st,) = report.services
    assert st.service == "replay" and st.state == "removed" and not st.endpoint
    assert [(x.minute, x.requests) for x in st.minutes] == [(minute_of(now - 60), 1), (minute_of(now), 3)]
    assert mgr.status().services == []  # sent once

    # the control plane counts them, and does not take the node for one that runs the service
    kind = object.__new__(Services)
    kind.series, kind.reports = ServiceSeries(), {}
    kind.on_report("node-1", report)
    assert sum(r for _, r in kind.series.arrivals("replay")) == 4
    assert kind.reports == {"node-1": {}}


def test_minutes_left_by_a_service_that_comes_back_go_out_with_its_new_status(tmp_path):
    mgr = ServiceManager(None, BentoCache(tmp_path / "cache", max_bytes=1 << 20), None)
    old = Service()
    old.router.minutes.record(time.time() - 120, 0.01)
    mgr.services["replay"] = _State(old)
    asyncio.run(mgr._remove("replay"))
    mgr.services["replay"] = _State(Service())  # assigned here again before a report went out
    (st,) = mgr.status().services
    assert st.state != "removed" and sum(x.requests for x in st.minutes) == 1
