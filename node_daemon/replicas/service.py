"""One stratum_service on this node: its endpoint (a ServiceRouter) and its replicas.

    svc = LocalService("congestion", runner, cache=cache)          # all async, on the daemon's loop
    await svc.start()                                              # svc.endpoint: http://127.0.0.1:<port>
    await svc.deploy(BentoRef(tag, digest), replicas=2, workers=1)
    await svc.roll(BentoRef(new_tag, new_digest))                  # model changed: rolling replacement
    await svc.scale(3)
    await svc.resize((0.5, 512))                                   # every replica's cpu quota and memory, live
    await svc.destroy()                                            # replicas stopped, ports freed

Rolling replacement, one replica at a time (surge 1): start a replica of the new bento, wait
until its /healthz answers, add it to the router, drain the old one (no new requests, wait for
its in-flight ones), then stop the old process.  New is ready before old stops, so a client of
the endpoint sees no failed request; a new replica that fails to start aborts the roll with the
old ones still serving.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from node_daemon.replicas.cache import BentoCache
from node_daemon.replicas.router import ServiceRouter
from stratum.runtime.runner import Replica, ReplicaRunner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BentoRef:
    tag: str | None = None  # name:version in the runner's BENTOML_HOME; None: from the cache by digest
    digest: str | None = None  # sha256 of the archive; with a cache, pins it while replicas use it


class LocalService:
    def __init__(self, service_id: str, runner: ReplicaRunner, *, cache: BentoCache | None = None,
                 host: str = "127.0.0.1", port: int = 0, drain_timeout: float = 60.0, **router_kwargs):
        self.service_id = service_id
        self.runner = runner
        self.cache = cache
        self.router = ServiceRouter(host, port, service_id=service_id, **router_kwargs)
        self.drain_timeout = drain_timeout
        self.replicas: list[Replica] = []
        self.bento: BentoRef | None = None
        self.workers = 1
        self.limits: tuple | None = None  # (cpu cores, memory MiB) of each replica's cgroup; None: none
        self._seq = itertools.count(1)
        self._lock = asyncio.Lock()
        # On-demand pool (form "on_demand"): replicas started by a request that finds none and
        # stopped after idle_stop_s without requests; see on_demand().
        self.pool: list[Replica] = []
        self.pool_max = 0
        self.idle_stop_s = 300.0
        self._idle_task: asyncio.Task | None = None
        self._peers: dict[str, str] = {}  # backend id -> URL of another node's router for this service

    @property
    def endpoint(self) -> str:
        return self.router.url

    async def start(self) -> "LocalService":
        await self.router.start()
        return self

    # -- replicas -----------------------------------------------------------------------------
    async def _resolve(self, ref: BentoRef) -> str:
        if self.cache is not None and ref.digest:
            return await asyncio.to_thread(self.cache.acquire, ref.digest)
        if not ref.tag:
            raise ValueError("a BentoRef needs a tag, or a digest and a cache")
        return ref.tag

    def _unpin(self, ref: BentoRef) -> None:
        if self.cache is not None and ref.digest:
            self.cache.release(ref.digest)

    async def _start_one(self, ref: BentoRef, workers: int, form: str = "edge") -> Replica:
        tag = await self._resolve(ref)
        try:
            replica = await self.runner.astart(tag, workers=workers, replica_id=f"{self.service_id}-{next(self._seq)}",
                                               limits=self.limits)
        except BaseException:
            self._unpin(ref)
            raise
        replica.extra["ref"] = ref
        self.router.add_backend(replica.id, replica.host, replica.port, form=form)
        return replica

    async def _retire(self, replica: Replica) -> None:
        clean = await self.router.drain(replica.id, self.drain_timeout)
        if not clean:
            log.warning("replica %s still had requests in flight after %.0fs; stopping it anyway", replica.id,
                        self.drain_timeout)
        await self.runner.astop(replica)
        self._unpin(replica.extra.get("ref", BentoRef()))

    async def deploy(self, ref: BentoRef, replicas: int = 1, workers: int = 1) -> None:
        """Run `replicas` replicas of `ref`: the first deployment, or a change of model / workers (rolled)."""
        if self.replicas and (ref != self.bento or workers != self.workers):
            await self.roll(ref, workers=workers)
        async with self._lock:
            self.bento, self.workers = ref, workers
        await self.scale(replicas)

    async def scale(self, replicas: int) -> None:
        async with self._lock:
            if self.bento is None:
                raise RuntimeError(f"service {self.service_id} has no bento deployed")
            while len(self.replicas) < replicas:
                self.replicas.append(await self._start_one(self.bento, self.workers))
            while len(self.replicas) > replicas:
                await self._retire(self.replicas.pop(0))

    async def resize(self, limits: tuple | None) -> None:
        """Vertical scaling without a restart: each replica's cgroup cpu quota and memory limit
        (either may be None for no limit); replicas started later get them too."""
        async with self._lock:
            self.limits = limits
            if self.runner.cgroups is None:
                if limits and any(limits):
                    log.warning("service %s: no cgroups on this node; limits %s not applied", self.service_id, limits)
                return
            for r in self.replicas + self.pool:
                await asyncio.to_thread(self.runner.set_limits, r, *(limits or (None, None)))

    async def roll(self, ref: BentoRef, workers: int | None = None) -> None:
        """Replace every replica by one of `ref`, one at a time: new ready, then old drained and stopped."""
        async with self._lock:
            workers = workers or self.workers
            for old in list(self.replicas):
                new = await self._start_one(ref, workers)  # raises: the old replicas keep serving
                self.replicas.append(new)
                self.replicas.remove(old)
                await self._retire(old)
            self.bento, self.workers = ref, workers
            for r in self.pool:  # on-demand replicas of the old model: the next request starts a new one
                await self._retire(r)
            self.pool = []

    def on_demand(self, max_replicas: int = 1, idle_s: float = 300.0, check_s: float = 1.0) -> None:
        """Keep an on-demand pool of up to `max_replicas` replicas (0: none): a request routed to the
        on-demand form that finds no replica waits in the router while one starts (a cold start);
        after `idle_s` without requests the pool's replicas are drained and stopped. With no warm
        replicas (deploy(..., replicas=0)) every request of the service is served this way: scale to zero."""
        self.pool_max, self.idle_stop_s = max_replicas, idle_s
        if max_replicas > 0:
            self.router.wakers["on_demand"] = lambda: asyncio.get_running_loop().create_task(self._wake())
            if self._idle_task is None:
                self._idle_task = asyncio.get_running_loop().create_task(self._stop_when_idle(check_s))
        else:
            self.router.wakers.pop("on_demand", None)

    async def _wake(self) -> None:
        try:
            async with self._lock:
                if self.bento is None:
                    raise RuntimeError("no bento deployed")
                if len(self.pool) < self.pool_max:
                    self.pool.append(await self._start_one(self.bento, self.workers, form="on_demand"))
        except Exception as e:  # noqa: BLE001 - waiting requests go on to the next form or get a 503
            log.warning("service %s could not start an on-demand replica: %s", self.service_id, e)
        finally:
            self.router.woken("on_demand")

    async def _stop_when_idle(self, check_s: float) -> None:
        while True:
            await asyncio.sleep(check_s)
            now = time.monotonic()
            for r in list(self.pool):
                b = self.router.backends.get(r.id)
                if b is None or (now - b.last_used >= self.idle_stop_s and not b.outstanding):
                    log.info("service %s: on-demand replica %s idle for %.0fs, stopping it", self.service_id, r.id,
                             now - b.last_used if b else 0)
                    async with self._lock:
                        if r in self.pool:
                            self.pool.remove(r)
                            await self._retire(r)

    def set_peers(self, peers: dict[str, str]) -> None:
        """Other nodes' routers for this service (backend id -> base URL), as the always_on form."""
        for bid in [b for b in self._peers if b not in peers]:
            self.router.remove_backend(bid)
        for bid, url in peers.items():
            if self._peers.get(bid) != url:
                u = urlsplit(url)
                self.router.add_backend(bid, u.hostname, u.port or 80, form="always_on", remote=True)
        self._peers = dict(peers)

    async def destroy(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()
        async with self._lock:
            replicas, self.replicas, self.pool = self.replicas + self.pool, [], []
            await self.router.stop()
            await asyncio.gather(*(self._stop_quietly(r) for r in replicas))

    async def _stop_quietly(self, replica: Replica) -> None:
        try:
            await self.runner.astop(replica)
        finally:
            self._unpin(replica.extra.get("ref", BentoRef()))

    def describe(self) -> dict:
        return {"service_id": self.service_id, "endpoint": self.endpoint, "bento": self.bento.__dict__ if self.bento else None,
                "workers": self.workers, "limits": self.limits, "replicas": [r.describe() for r in self.replicas],
                "on_demand": [r.describe() for r in self.pool], "router": self.router.stats()}
