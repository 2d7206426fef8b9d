"""The autoscaler: once a tick, each service with `scaling.mode` predictive or reactive gets one
decision a minute (decide.py, the same code bench/autoscale's simulator runs): the demand from its
per-minute arrivals (decide.Decider), then the replica count, size and sites together, the
optimiser's cheapest over the nodes' free room and the cloud pools (decide.ranked); when they
change the service is placed again (control_plane/services.py: scale), trying the next choice
when placement finds no room for one. Placement ranks as the optimiser does (enrolled nodes
first, then pools by price), and cloud VMs follow from it; nodes apply sizes to the replicas'
cgroups live.

Sizes: with `scaling.vertical` the model version's measured sizes, else one, the spec's own.
Per-replica capacity: `scaling.target_rpm`, else the serving version's measured capacity, refined
from live minutes (vertical.refine) while a size and count stay unchanged. With
`scaling.zero_after`, a service without requests for that long keeps no warm replica.
Deciders keep their forecasters in memory; a changed spec, or a change of lead time (a cloud pool
became usable or stopped being), starts a new one.

`Autoscaler.decisions` holds each service's latest decision as plain values (for the dashboard);
each minute's decision is also logged at debug level ("autoscale decision").
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field

from google.protobuf import json_format
from threadpoolctl import threadpool_limits

from control_plane.autoscale.decide import Decider, Decision, ranked, sites_for
from control_plane.autoscale.optimiser import Config, Site
from control_plane.autoscale.vertical import Size, refine, sizes_of
from control_plane.provision.pools import POOL_LABEL, SLOT_PREFIX
from control_plane.reconcile.snapshot import key_of
from control_plane.services import Services, replica_bounds, replicas_of, scaled, sized
from stratum.clock import MINUTE_S, minute_of
from stratum.logs import event
from stratum.v1 import models_pb2 as m

log = logging.getLogger("stratum.autoscale")

DEFAULT_RPM = 600.0  # per replica when the model version has no measured capacity


def _vm_boot_s() -> float:
    raw = os.environ.get("STRATUM_VM_BOOT_S", "180")
    try:
        v = float(raw)
    except ValueError:
        raise SystemExit(f"STRATUM_VM_BOOT_S={raw!r}: give seconds, e.g. 180") from None
    if not 0 <= v <= 3600:
        raise SystemExit(f"STRATUM_VM_BOOT_S={raw!r}: give 0 to 3600 seconds")
    return v


CATCH_UP_MIN = 30  # minutes a late tick decides after the fact, at most

# A cloud VM's boot and join, added to the lead time of services that may use pools. 180 s unless
# STRATUM_VM_BOOT_S says (a test with short minutes shortens it with them, as STRATUM_MINUTE_S).
VM_BOOT_S = _vm_boot_s()


def lead_minutes(version: dict | None, uses_pools: bool) -> int:
    """Minutes from a decision to the capacity serving: a replica's start from a cached bento (its
    measured load time), plus a VM's boot where the service may run on cloud pools; and the minute
    it then serves."""
    start_s = float((version or {}).get("load_time_s") or 2.0) + (VM_BOOT_S if uses_pools else 0.0)
    return 1 + math.ceil(start_s / MINUTE_S)


@dataclass
class _Held:
    fingerprint: str
    decider: Decider
    since: int  # first minute this decider saw (scale to zero waits a full idle period after it)
    capacity: dict = field(default_factory=dict)  # size key -> refined requests/min per replica
    steady_from: int = 0  # first minute served by the current size and count
    refined_to: int = 0  # last minute fed to refine()
    shape: tuple = ()  # (size key, replicas) the minutes since steady_from were served by
    decision: Decision | None = None  # this minute's
    choices: list = field(default_factory=list)  # its ranked choices, best first
    zero: bool = False
    text: str = ""
    sizes: dict = field(default_factory=dict)  # config name -> the measured Size it stands for


def _key(size: dict | Size | None) -> tuple:
    if size is None:
        return ()
    d = size.as_dict() if isinstance(size, Size) else size
    return (d["cpu"], d["memory_mb"], d["workers"])


def size_config(z: Size, capacity_rpm: float, memory_mb: int) -> Config:
    """A measured size as the optimiser's configuration (memory: what placement reserves for it)."""
    return Config(f"{z.cpu:g}cpu-{z.workers}w", z.cpu, memory_mb, z.workers, capacity_rpm)


class Autoscaler:
    def __init__(self, services: Services):
        self.services = services
        self.held: dict[str, _Held] = {}
        # service -> its latest decision, plain values: minute (unix minute), forecast_rpm (the demand
        # provisioned for), capacity_rpm (of what was provisioned), replicas, size, reason, changed
        # (this tick changed the count or size). Replaced whole each tick: readers need no lock.
        self.decisions: dict[str, dict] = {}

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
            self.decisions.pop(gone, None)
            event(log, "autoscaler forgets service", service=gone)

    def _configs(self, h: _Held, doc: dict, spec: m.ServiceSpec, sizes: list[Size], one: float) -> list[Config]:
        """The sizes the decision chooses among, with their (refined) capacities; `one`: the
        per-replica capacity of a service without sizes."""
        if not sizes:
            d = self.services._demand(spec)
            return [Config("replica", d.cpu, d.memory_mb, spec.workers or 1, h.capacity.get((), one))]
        out = []
        for z in sizes:
            d = self.services._demand(sized(spec, {"spec": doc["spec"], "size": z.as_dict()}))
            out.append(size_config(z, self._cap(h, z), d.memory_mb))
        h.sizes = {c.name: z for c, z in zip(out, sizes)}
        return out

    def _sites(self, name: str, spec: m.ServiceSpec) -> list[Site]:
        snap = self.services.reconciler.snapshot()
        prices = {v.pool: v.price_per_hour for v in snap.nodes if v.pool}
        if self.services.pools is not None:  # a pool with no VM left to start has no template above
            more, _ = self.services.pools.templates(False)
            prices.update({v.pool: v.price_per_hour for v in more if v.pool})
        return sites_for(self.services._demand(spec), snap.nodes, snap.used({key_of("service", name)}), prices, POOL_LABEL)

    def _service(self, doc: dict, spec: m.ServiceSpec, now_min: int) -> None:
        name = doc["name"]
        version = self.services.models.serving(spec.model)
        # Decide on the minutes every node has sent: a minute not yet reported is not a quiet one.
        done = self.services.series.complete_to(name, set(doc["placement"]))
        now_min = min(now_min, done + 1) if done is not None else now_min
        sites = self._sites(name, spec) or None  # no node, no pool: the count alone
        lead = lead_minutes(version, self._uses_pools(doc) or any(s.pool for s in sites or ()))
        fp = json.dumps([doc["spec"], lead], sort_keys=True)
        h = self.held.get(name)
        if h is None or h.fingerprint != fp:
            h = self.held[name] = _Held(fp, Decider(spec.scaling.mode, lead), since=now_min)
            event(log, "autoscaler starts deciding", service=name, mode=spec.scaling.mode, lead_min=lead, minute=now_min)
        arrivals = self.services.series.arrivals(name)
        slo = spec.slo.p95_latency_ms

        n_now = replicas_of(spec, doc)
        zero_now = bool(doc.get("zero"))
        sizes = sizes_of(version, slo, spec.scaling.target_rpm) if spec.scaling.vertical else []
        size_now = doc.get("size") if sizes else None
        shape = (_key(size_now), 0 if zero_now else n_now)
        if shape != h.shape:  # a new size or count: earlier minutes say nothing about it
            h.shape, h.steady_from, h.refined_to = shape, now_min + 1, now_min

        if h.decision is None or h.decision.minute != now_min:  # one decision a minute, as the simulator
            points = self.services.series.points(name, 60)
            one = self._per_replica(spec, version)
            per_now = self._capacity(h, spec, sizes, size_now, points, slo, now_min, one)
            configs = self._configs(h, doc, spec, sizes, one)
            provisioned = 0.0 if zero_now else n_now * per_now
            # Ticks that ran late skipped minutes: decide those too (not applied: they are past), so
            # the cool-down holds every minute's target, as in the simulator.
            since = h.decision.minute + 1 if h.decision is not None else now_min
            for minute in range(max(since, now_min - CATCH_UP_MIN), now_min + 1):
                self._decide(h, name, spec, minute, arrivals, points, configs, sites, provisioned, sizes)
                # The next minute of this pass is judged (the safety net's reference) against this
                # minute's decision, as the simulator judges every minute against the one before:
                # a scale-in decided a moment ago is the capacity that is about to run.
                provisioned = 0.0 if h.zero else h.decision.choice.capacity_rpm
        self._apply(h, name, doc, sizes, n_now, size_now, zero_now)

    def _decide(self, h: _Held, name: str, spec: m.ServiceSpec, minute: int, arrivals, points, configs, sites,
                provisioned: float, sizes: list) -> None:
        lo, hi = replica_bounds(spec)
        slo = spec.slo.p95_latency_ms
        last = next((pt for pt in reversed(points) if pt["minute"] == minute - 1), None)
        h.decider.observe_to(minute, [a for a in arrivals if a[0] < minute])
        d = h.decider.decide(minute, provisioned, configs, sites, lo, hi, p95_ms=last["p95_ms"] if last else 0.0,
                             slo_ms=slo)
        h.decision, h.choices = d, ranked(d.need_rpm, configs, sites, lo, hi) or [d.choice]
        h.zero = False
        idle = max(1, math.ceil(spec.scaling.zero_after_s / MINUTE_S))
        if spec.scaling.zero_after_s > 0:
            busy = [mn for mn, r in arrivals if r > 0 and minute - idle <= mn < minute]
            h.zero = not busy and minute - h.since >= idle
        c = d.choice
        h.text = (f"no requests for {idle} min: scaled to zero" if h.zero else
                  f"{d.why}: {d.need_rpm:.0f} req/min needs {c.replicas} x " + (
                      f"{c.config.cpu:g} cpu/{c.config.workers}w ({c.config.capacity_rpm:.1f} req/min each)"
                      if sizes and c.config else f"{c.config.capacity_rpm if c.config else 0:g}")
                  + (f" ({_where(c)})" if c.sites else ""))
        event(log, "autoscale decision", level=logging.DEBUG, service=name, minute=minute, lead_min=h.decider.lead,
              live_rpm=h.decider.last if h.decider.seen == minute - 1 else 0.0, provisioned_rpm=provisioned,
              live_p95_ms=last["p95_ms"] if last else 0.0,
              need_rpm=round(d.need_rpm, 3), replicas=c.replicas, capacity_rpm=round(c.capacity_rpm, 3),
              size=[c.config.cpu, c.config.memory_mb, c.config.workers] if c.config else None, sites=c.sites,
              vms=c.vms, cost_per_hour=round(c.cost_per_hour, 6), zero=h.zero, why=d.why,
              configs=[[x.name, x.cpu, x.memory_mb, x.workers, x.capacity_rpm] for x in configs],
              site_list=[[x.name, x.cpu, x.memory_mb, x.price_per_hour, x.max_vms] for x in sites or ()])

    def _apply(self, h: _Held, name: str, doc: dict, sizes: list, n_now: int, size_now: dict | None,
               zero_now: bool) -> None:
        """Scale to this minute's decision, or the next choice where placement finds no room; record it."""
        d = h.decision
        changed, applied = False, None
        for c in h.choices:
            z = h.sizes.get(c.config.name) if sizes and c.config else None
            size = Size(z.cpu, z.memory_mb, z.workers, c.config.capacity_rpm).as_dict() if z else None
            n = n_now if h.zero else c.replicas  # at zero, keep the room the next request's replica needs
            if n == n_now and _key(size) == _key(size_now) and h.zero == zero_now:  # nothing to change
                if h.text != doc.get("scaling_reason"):
                    self.services.note_scaling(name, doc["spec"], h.text)
                applied = (c, size)
                break
            if self.services.scale(name, n, h.text, size=size, zero=h.zero):
                changed, applied = True, (c, size)
                break
        c, size = applied or (d.choice, None)
        self.decisions[name] = {"minute": d.minute, "forecast_rpm": round(float(d.need_rpm), 3),
                                "capacity_rpm": round(float(c.capacity_rpm), 3) if applied else 0.0,
                                "replicas": 0 if h.zero else int(c.replicas), "size": size,
                                "reason": h.text if applied else h.text + " (no room: kept as it was)",
                                "changed": changed}

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
                  slo: float, now_min: int, one: float) -> float:
        """Per-replica requests/min of what runs now, refined by the minutes it served (measured
        capacities only: a `target_rpm` the user gave is taken as said)."""
        if sizes:
            z = next((x for x in sizes if _key(x) == _key(size_now)), None)
            if z is None:
                return min(sizes, key=lambda x: x.cpu).capacity_rpm
            base, key = z.capacity_rpm, _key(z)
        else:
            base, key = one, ()
        cap = h.capacity.get(key, base)
        replicas = h.shape[1]
        fresh = [(p["requests"], p["p95_ms"]) for p in points
                 if max(h.steady_from, h.refined_to + 1) <= p["minute"] < now_min]
        if fresh and not spec.scaling.target_rpm and replicas:
            cap = h.capacity[key] = refine(cap, fresh, replicas, slo, base=base)
        h.refined_to = now_min - 1
        return cap


def _where(c) -> str:
    return ", ".join(f"{k} on {site}" for site, k in c.sites.items()) + (
        "".join(f"; {v} VM(s) of {p}" for p, v in c.vms.items()))
