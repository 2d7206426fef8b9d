"""The autoscaler: once a tick, each service with `scaling.mode` predictive or reactive gets a
demand from its per-minute arrivals (horizontal.ServiceScaler), then a replica count and, with
`scaling.vertical`, a replica size (vertical.options); when they change the service is placed
again (control_plane/services.py: scale). Cloud VMs follow from placement; nodes apply sizes
to the replicas' cgroups live.

Per-replica capacity: `scaling.target_rpm`, else the serving version's measured capacity, refined
from live minutes (vertical.refine) while a size and count stay unchanged. With
`scaling.zero_after`, a service without requests for that long keeps no warm replica.
Scalers keep their forecasters in memory; a changed spec starts a new one.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field

from google.protobuf import json_format
from threadpoolctl import threadpool_limits

from control_plane.autoscale.horizontal import ServiceScaler
from control_plane.autoscale.vertical import Size, options, refine, sizes_of
from control_plane.provision.pools import POOL_LABEL, SLOT_PREFIX
from control_plane.services import Services, replica_bounds, replicas_of, scaled
from stratum.clock import MINUTE_S, minute_of
from stratum.logs import event
from stratum.v1 import models_pb2 as m

log = logging.getLogger("stratum.autoscale")

DEFAULT_RPM = 600.0  # per replica when the model version has no measured capacity
VM_BOOT_S = 180.0  # a cloud VM's boot and join, added to the lead time of services that use pools


def lead_minutes(version: dict | None, uses_pools: bool) -> int:
    """Minutes from a decision to the capacity serving: a replica's start from a cached bento (its
    measured load time), plus a VM's boot where the service runs on cloud pools; and the minute
    it then serves."""
    start_s = float((version or {}).get("load_time_s") or 2.0) + (VM_BOOT_S if uses_pools else 0.0)
    return 1 + math.ceil(start_s / MINUTE_S)


@dataclass
class _Held:
    fingerprint: str
    scaler: ServiceScaler
    since: int  # first minute this scaler saw (scale to zero waits a full idle period after it)
    capacity: dict = field(default_factory=dict)  # size key -> refined requests/min per replica
    steady_from: int = 0  # first minute served by the current size and count
    refined_to: int = 0  # last minute fed to refine()
    shape: tuple = ()  # (size key, replicas) the minutes since steady_from were served by


def _key(size: dict | Size | None) -> tuple:
    if size is None:
        return ()
    d = size.as_dict() if isinstance(size, Size) else size
    return (d["cpu"], d["memory_mb"], d["workers"])


class Autoscaler:
    def __init__(self, services: Services):
        self.services = services
        self.held: dict[str, _Held] = {}

    def _per_replica(self, spec: m.ServiceSpec, version: dict | None) -> float:
        if spec.scaling.target_rpm:
            return spec.scaling.target_rpm
        rps = float((version or {}).get("capacity_rps") or 0.0)
        return rps * 60 * (spec.workers or 1) if rps else DEFAULT_RPM

    def tick(self, now: float | None = None) -> None:
        # One OpenMP thread for the compensators' fits and predictions: their inputs are tiny, and
        # spinning threads contend with the replicas and training jobs on the same cores.
        with threadpool_limits(1, user_api="openmp"):
            self._tick(time.time() if now is None else now)

    def _tick(self, now: float) -> None:
        now_min = minute_of(now)
        live = set()
        for doc in self.services.docs():
            if doc.get("deleting"):
                continue
            spec = json_format.ParseDict(doc["spec"], m.ServiceSpec())
            if not scaled(spec):
                continue
            live.add(doc["name"])
            try:
                self._service(doc, spec, now_min)
            except Exception:  # noqa: BLE001 - one service's trouble must not stop the others
                log.exception("autoscaling %s failed", doc["name"])
        for gone in set(self.held) - live:
            del self.held[gone]
            event(log, "autoscaler forgets service", service=gone)

    def _service(self, doc: dict, spec: m.ServiceSpec, now_min: int) -> None:
        name = doc["name"]
        version = self.services.models.serving(spec.model)
        lo, hi = replica_bounds(spec)
        fp = json.dumps(doc["spec"], sort_keys=True)
        h = self.held.get(name)
        if h is None or h.fingerprint != fp:
            per = self._per_replica(spec, version)
            lead = lead_minutes(version, self._uses_pools(doc))
            h = self.held[name] = _Held(fp, ServiceScaler(spec.scaling.mode, lo, hi, per, lead=lead), since=now_min)
        # Decide on the minutes every node has sent: a minute not yet reported is not a quiet one.
        done = self.services.series.complete_to(name, set(doc["placement"]))
        now_min = min(now_min, done + 1) if done is not None else now_min
        arrivals = self.services.series.arrivals(name)
        points = self.services.series.points(name, 60)
        slo = spec.slo.p95_latency_ms
        last = points[-1] if points and points[-1]["minute"] == now_min - 1 else None

        n_now = replicas_of(spec, doc)
        zero_now = bool(doc.get("zero"))
        sizes = sizes_of(version, slo, spec.scaling.target_rpm) if spec.scaling.vertical else []
        size_now = doc.get("size") if sizes else None
        shape = (_key(size_now), 0 if zero_now else n_now)
        if shape != h.shape:  # a new size or count: earlier minutes say nothing about it
            h.shape, h.steady_from, h.refined_to = shape, now_min + 1, now_min
        per_now = self._capacity(h, spec, sizes, size_now, points, slo, now_min)
        need, why = h.scaler.need(now_min, arrivals, 0.0 if zero_now else n_now * per_now,
                                  p95_ms=last["p95_ms"] if last else 0.0, slo_ms=slo)

        zero = False
        if spec.scaling.zero_after_s > 0:
            idle = max(1, math.ceil(spec.scaling.zero_after_s / MINUTE_S))
            busy = [mn for mn, r in arrivals if r > 0 and mn >= now_min - idle]
            zero = not busy and now_min - h.since >= idle
            if zero:
                why = f"no requests for {idle} min: scaled to zero"

        if sizes:
            choices = [(z.as_dict() | {"capacity_rpm": round(self._cap(h, z), 3)}, n)
                       for z, n in options(need, [Size(z.cpu, z.memory_mb, z.workers, self._cap(h, z)) for z in sizes],
                                           lo, hi)]
        else:
            per = h.scaler.per_replica_rpm
            choices = [(None, min(max(math.ceil(need / per - 1e-9) if per > 0 else n_now, lo), hi))]
        for size, n in choices:
            if zero:
                n = n_now  # keep the room the next request's replica needs
            text = why if zero else f"{why}: {need:.0f} req/min needs {n} x " + (
                f"{size['cpu']:g} cpu/{size['workers']}w ({size['capacity_rpm']:.1f} req/min each)" if size
                else f"{h.scaler.per_replica_rpm:g}")
            if n == n_now and _key(size) == _key(size_now) and zero == zero_now:  # nothing to change
                if text != doc.get("scaling_reason"):
                    self.services.note_scaling(name, doc["spec"], text)
                return
            if self.services.scale(name, n, text, size=size, zero=zero):
                return

    def _uses_pools(self, doc: dict) -> bool:
        """Placed on a cloud pool's VM, or on a slot for one."""
        for node_id in doc["placement"]:
            if node_id.startswith(SLOT_PREFIX):
                return True
            try:
                if POOL_LABEL in self.services.nodes.get(node_id).labels:
                    return True
            except Exception:  # noqa: BLE001 - a node gone: not a pool VM we know of
                continue
        return False

    def _cap(self, h: _Held, z: Size) -> float:
        return h.capacity.get(_key(z), z.capacity_rpm)

    def _capacity(self, h: _Held, spec: m.ServiceSpec, sizes: list[Size], size_now: dict | None, points: list[dict],
                  slo: float, now_min: int) -> float:
        """Per-replica requests/min of what runs now, refined by the minutes it served (measured
        capacities only: a `target_rpm` the user gave is taken as said)."""
        if sizes:
            z = next((x for x in sizes if _key(x) == _key(size_now)), None)
            if z is None:
                return min(sizes, key=lambda x: x.cpu).capacity_rpm
            base, key = z.capacity_rpm, _key(z)
        else:
            base, key = h.scaler.per_replica_rpm, ()
        cap = h.capacity.get(key, base)
        replicas = h.shape[1]
        fresh = [(p["requests"], p["p95_ms"]) for p in points
                 if max(h.steady_from, h.refined_to + 1) <= p["minute"] < now_min]
        if fresh and not spec.scaling.target_rpm and replicas:
            cap = h.capacity[key] = refine(cap, fresh, replicas, slo, base=base)
            if not sizes:
                h.scaler.per_replica_rpm = cap
        h.refined_to = now_min - 1
        return cap
