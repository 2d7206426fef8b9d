"""One stratum_service on this node: its endpoint (a ServiceRouter) and its replicas.

    svc = LocalService("congestion", runner, cache=cache)          # all async, on the daemon's loop
    await svc.start()                                              # svc.endpoint: http://127.0.0.1:<port>
    await svc.deploy(BentoRef(tag, digest), replicas=2, workers=1)
    await svc.roll(BentoRef(new_tag, new_digest))                  # model changed: rolling replacement
    await svc.scale(3)
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

from node_daemon.replicas.cache import BentoCache
from node_daemon.replicas.router import ServiceRouter
from node_daemon.replicas.runner import Replica, ReplicaRunner

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
        self._seq = itertools.count(1)
        self._lock = asyncio.Lock()
        self.on_demand_replicas = 1  # replicas started by the first request in on-demand mode

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

    async def _start_one(self, ref: BentoRef, workers: int) -> Replica:
        tag = await self._resolve(ref)
        try:
            replica = await self.runner.astart(tag, workers=workers, replica_id=f"{self.service_id}-{next(self._seq)}")
        except BaseException:
            self._unpin(ref)
            raise
        replica.extra["ref"] = ref
        self.router.add_backend(replica.id, replica.host, replica.port)
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

    def scale_to_zero(self, idle_s: float, check_s: float = 1.0) -> None:
        """On-demand mode: no replica while idle. The first request starts one (it waits in the router
        meanwhile); after `idle_s` without requests the replicas are drained and stopped."""
        self.router.on_empty = lambda: asyncio.get_running_loop().create_task(self._wake())
        self._idle_task = asyncio.get_running_loop().create_task(self._stop_when_idle(idle_s, check_s))

    async def _wake(self) -> None:
        try:
            await self.scale(max(1, self.on_demand_replicas))
        except Exception as e:  # noqa: BLE001 - parked requests time out with 504; the next request retries
            log.warning("service %s could not start an on-demand replica: %s", self.service_id, e)
            self.router._waking = False

    async def _stop_when_idle(self, idle_s: float, check_s: float) -> None:
        while True:
            await asyncio.sleep(check_s)
            idle = time.monotonic() - self.router.last_request
            if self.replicas and idle >= idle_s and not any(b.outstanding for b in self.router.backends.values()):
                log.info("service %s idle for %.0fs: stopping its replicas", self.service_id, idle)
                await self.scale(0)

    async def destroy(self) -> None:
        if getattr(self, "_idle_task", None) is not None:
            self._idle_task.cancel()
        async with self._lock:
            replicas, self.replicas = self.replicas, []
            await self.router.stop()
            await asyncio.gather(*(self._stop_quietly(r) for r in replicas))

    async def _stop_quietly(self, replica: Replica) -> None:
        try:
            await self.runner.astop(replica)
        finally:
            self._unpin(replica.extra.get("ref", BentoRef()))

    def describe(self) -> dict:
        return {"service_id": self.service_id, "endpoint": self.endpoint, "bento": self.bento.__dict__ if self.bento else None,
                "workers": self.workers, "replicas": [r.describe() for r in self.replicas], "router": self.router.stats()}
