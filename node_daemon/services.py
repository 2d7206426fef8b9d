"""Run what the control plane assigns: one LocalService (endpoint + replicas) per service.

The agent hands each Assignments message to `ServiceManager.apply`; a reconcile task per service
fetches the bento (FetchBento, resumable, verified by the cache), then deploys, rolls or scales
its replicas; services no longer assigned are destroyed (replicas stopped, ports freed).  After
every change the manager calls `report()` so the agent sends a ServiceReport.

The endpoint's port is kept across reconnects and rolls: a client holding the URL keeps working.
The manager keeps running what it runs while the control plane is away (house rule); only a new
Assignments message changes anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable

from node_daemon.replicas.cache import BentoCache, CacheError
from node_daemon.transfer import download
from stratum.runtime.runner import ReplicaError, ReplicaRunner
from node_daemon.replicas.service import BentoRef, LocalService
from stratum.logs import event
from stratum.runtime.latency import REMOVED
from stratum.request_placement import FormProfile, InputCheck, Placer, Profiles
from stratum.v1 import node_agent_pb2 as na

log = logging.getLogger("stratum.node.services")

# fetch(digest, offset) -> async iterator of (chunk bytes, total size)
Fetcher = Callable[[str, int], AsyncIterator[bytes]]


@dataclass
class _State:
    service: LocalService
    want: na.ServiceAssignment | None = None
    version: str = ""
    state: str = "starting"
    error: str = ""
    task: asyncio.Task | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class ServiceManager:
    def __init__(self, runner: ReplicaRunner, cache: BentoCache, fetch: Fetcher, *, serve_host: str = "127.0.0.1",
                 advertise_host: str | None = None, report: Callable[[], None] = lambda: None,
                 health_interval: float = 1.0):
        self.runner, self.cache, self.fetch = runner, cache, fetch
        self.serve_host, self.advertise_host = serve_host, advertise_host or serve_host
        self.report = report
        self.health_interval = health_interval
        self.services: dict[str, _State] = {}
        # the minutes a service's endpoint counted before the service left this node: reported
        # once (the partial last one too), or the control plane's series would miss them
        self.left_minutes: dict[str, list[dict]] = {}
        self.generation = 0
        self._apply_lock = asyncio.Lock()  # Assignments apply one at a time, in arrival order

    # -- desired state --------------------------------------------------------------------------
    async def apply(self, assignments: na.Assignments) -> None:
        async with self._apply_lock:
            await self._apply(assignments)

    async def _apply(self, assignments: na.Assignments) -> None:
        if assignments.generation < self.generation:
            return  # an older message overtaken by a newer one
        self.generation = assignments.generation
        wanted = {a.service: a for a in assignments.services}
        for name, a in wanted.items():
            st = self.services.get(name)
            if st is None:
                svc = await LocalService(name, self.runner, cache=self.cache, host=self.serve_host,
                                         health_interval=self.health_interval).start()
                st = self.services[name] = _State(svc)
                event(log, "service assigned", service=name, endpoint=self.endpoint(st))
            st.want = a
            st.wake.set()
            if st.task is None or st.task.done():
                st.task = asyncio.create_task(self._reconcile(name, st))
        for name in [n for n in self.services if n not in wanted]:
            await self._remove(name)
        self.report()

    async def _remove(self, name: str) -> None:
        st = self.services.pop(name)
        if st.task is not None:
            st.task.cancel()
            await asyncio.gather(st.task, return_exceptions=True)
        await st.service.destroy()
        left = st.service.router.minutes.drain()
        if left:
            self.left_minutes.setdefault(name, []).extend(left)
        event(log, "service removed", service=name)

    async def close(self) -> None:
        for name in list(self.services):
            await self._remove(name)
        # a last sweep: anything the runner started that no service holds any more (an on-demand
        # start in flight, say); then this node's own cgroup directories
        await asyncio.to_thread(self.runner.stop_all)
        if self.runner.cgroups is not None:
            self.runner.cgroups.close()

    def endpoint(self, st: _State) -> str:
        host = self.advertise_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{st.service.router.port}"

    # -- convergence ----------------------------------------------------------------------------
    async def _reconcile(self, name: str, st: _State) -> None:
        """Bring one service to its latest assignment; retries with backoff on failure."""
        delay = 1.0
        while True:
            st.wake.clear()
            a = st.want
            try:
                await self._converge(st, a)
                st.state, st.error, delay = "ready", "", 1.0
                self.report()
            except asyncio.CancelledError:
                raise
            except (CacheError, ReplicaError, OSError, RuntimeError, ValueError) as e:
                st.state, st.error = "failed", f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
                event(log, "service failed", level=logging.WARNING, service=name, error=st.error)
                self.report()
                try:
                    await asyncio.wait_for(st.wake.wait(), delay)
                except asyncio.TimeoutError:
                    pass
                delay = min(delay * 2, 30.0)
                continue
            await st.wake.wait()

    async def _converge(self, st: _State, a: na.ServiceAssignment) -> None:
        digest = a.bento_digest
        if not self.cache.has(digest):
            st.state = "starting"
            await self._download(digest, a.bento_size_bytes)
        ref = BentoRef(digest=digest)
        workers = a.workers or 1
        svc = st.service
        limits = (a.cpu_limit or None, a.memory_limit_mb or None)
        limits = None if limits == (None, None) else limits
        if limits != svc.limits:  # vertical: live, before any new replica starts with the old ones
            event(log, "resizing replicas", service=a.service, cpu=a.cpu_limit, memory_mb=a.memory_limit_mb)
            await svc.resize(limits)
        if a.routing.on_demand_replicas:
            # The on-demand pool before the warm replicas go (scale to zero): a request that comes
            # while the last one stops then waits for a cold start instead of getting a 503.
            svc.on_demand(a.routing.on_demand_replicas, a.routing.idle_stop_s or 300.0)
        if svc.bento != ref or svc.workers != workers or len(svc.replicas) != a.replicas:
            if svc.replicas and svc.bento != ref:
                event(log, "rolling service", service=a.service, to_version=a.version)
            await svc.deploy(ref, replicas=a.replicas, workers=workers)
        st.version = a.version
        route(svc, a.routing)

    async def _download(self, digest: str, size: int) -> None:
        await download(self.cache, self.fetch, digest, size)

    # -- observed state -------------------------------------------------------------------------
    def status(self, with_samples: bool = False) -> na.ServiceReport:
        now = time.time()  # one instant for every service's minutes, and what the report says it is
        out = na.ServiceReport(generation=self.generation, minutes_taken_at=now)
        for name, st in sorted(self.services.items()):
            svc = st.service
            ready = sum(1 for r in svc.replicas if r.id in svc.router.backends
                        and svc.router.backends[r.id].state == "ready")
            stats = svc.router.stats()
            s = na.ServiceStatus(service=name, version=st.version if st.state == "ready" else "",
                                 endpoint=self.endpoint(st), ready_replicas=ready, state=st.state, error=st.error,
                                 requests=stats["requests"], failures=stats["failures"])
            _add_minutes(s, self.left_minutes.pop(name, []) + svc.router.minutes.take(now))  # each sent once
            if with_samples:
                rows = svc.router.take_samples()
                if rows:
                    s.samples_json = json.dumps(rows, default=str)
            out.services.append(s)
        for name in [n for n in self.left_minutes if n not in self.services]:
            s = na.ServiceStatus(service=name, state=REMOVED)  # minutes only: the control plane adds them up
            _add_minutes(s, self.left_minutes.pop(name))
            out.services.append(s)
        return out


def _add_minutes(s: na.ServiceStatus, minutes: list[dict]) -> None:
    for mm in minutes:
        s.minutes.append(na.MinuteSample(minute=mm["minute"], requests=mm["requests"], failures=mm["failures"],
                                         max_in_flight=mm["max_in_flight"], latency_buckets=mm["buckets"],
                                         latency_sum_ms=mm["latency_sum_ms"]))


def route(svc: LocalService, plan: na.RoutingPlan) -> None:
    """Set the service's request placement from its RoutingPlan: the forms' profiles, peers as the
    always_on form, the on-demand pool. Stream statistics survive a plan that changes nothing."""
    forms = tuple(FormProfile(f.form, f.p95_ms, f.cold_start_s, f.max_input_bytes, f.capacity_rps, f.cost_per_hour)
                  for f in plan.forms)
    if plan.mode != "straightline" or not forms:
        svc.router.placer = svc.router.input_check = None
        svc.set_peers({})
        # a service scaled to zero runs no warm replica: its next request starts one
        svc.on_demand(plan.on_demand_replicas, plan.idle_stop_s or 300.0)
        return
    profiles = Profiles(forms, idle_stop_s=plan.idle_stop_s or 300.0, ood_share_max=plan.ood_share_max)
    old = svc.router.placer
    if old is None or (old.profiles, old.slo_p95_ms) != (profiles, plan.slo_p95_ms):
        svc.router.placer = Placer(profiles, plan.slo_p95_ms)
        event(log, "request placement", service=svc.service_id, forms=[f.form for f in forms],
              peers=[p.node_name for p in plan.peers])
    bounds = json.loads(plan.input_bounds_json) if plan.input_bounds_json else {}
    svc.router.input_check = InputCheck(bounds) if bounds else None
    svc.set_peers({f"peer-{p.node_name}": p.endpoint for p in plan.peers})
    svc.on_demand(plan.on_demand_replicas, plan.idle_stop_s or 300.0)


async def grpc_fetcher(stub, digest: str, offset: int, method: str = "FetchBento"):
    """FetchBento (or FetchBlob) over the node's mTLS channel, as an async iterator of chunks."""
    call = getattr(stub, method)(na.FetchBentoRequest(digest=digest, offset=offset))
    async for chunk in call:
        yield chunk.data

