"""Services: desired state (store table `services`), validation, and what each node is told to run.

A service document holds the spec and its placement ({node id: replicas}); the version to run is
always the model's serving version, so a retrained or pinned model rolls out by itself.  Placing,
pushing assignments and rebalancing go through the reconciler (control_plane/reconcile/), which
treats services and apps alike; this module is the service `Kind` it calls back: a document as a
Workload, what a node runs for it, what nodes report.  Nodes report what they run on their
session (ServiceReport); those reports are kept in memory (a restarted control plane gets fresh
ones as nodes reconnect) and are the observed state the service's `state` is computed from.

Delete is two-phase, so `terraform destroy` can wait for processes and ports to be gone: the
document is marked deleting, nodes are told, and it is removed once no node reports the service
(or the nodes that ran it are down).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from google.protobuf import json_format

from control_plane.autoscale.metrics import ServiceSeries
from control_plane.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from control_plane.models import Models
from control_plane.nodes import NodeRegistry
from control_plane.analysis import ServiceNeeds, analyse, check_plan as check_whole_plan
from control_plane.placement.first_fit import Demand, why_not
from control_plane.placement.forms import Plan, routing_plan
from control_plane.provision.pools import SLOT_PREFIX
from control_plane.placement.rank import Preferences, place_service
from control_plane.reconcile import Reconciler, Workload, key_of
from control_plane.reconcile.snapshot import anti_affinity_keys
from control_plane.store import Store
from stratum.logs import event
from stratum.runtime.latency import REMOVED
from stratum.request_placement import ood_bounds
from stratum.validation import (MAX_REPLICAS, check_name, check_number, check_preferences, check_requirements,
                                check_seconds, shown)
from stratum.v1 import control_plane_pb2 as cp, models_pb2 as m, node_agent_pb2 as na

log = logging.getLogger("stratum.services")

DEFAULT_MEMORY_MB = 256  # per replica when neither the spec nor the model's profile says
MAX_SAMPLES = 5000  # rows of request inputs kept per model for drift checks


def spec_json(spec: m.ServiceSpec) -> dict:
    return json_format.MessageToDict(spec, preserving_proto_field_name=True)


MAX_WORKERS = 32  # worker processes per replica
MAX_ON_DEMAND = 16  # on-demand replicas per node (routing.mode = "straightline")
MAX_SLO_MS = 3_600_000.0  # an hour: beyond any latency objective
MAX_RPM = 1e9  # requests per minute one replica takes
MAX_CONNECTS = 64


def validate_spec(spec: m.ServiceSpec) -> list[tuple[str, str]]:
    """Every problem the spec alone shows, with its field path. Every number has both bounds (NaN and
    Inf refused) and every echoed value is cut by `shown`, as for every other spec."""
    problems = check_name(spec.name)
    if not spec.model:
        problems.append(("model", "name the model to serve (stratum_model.<name>.id)"))
    else:
        problems += check_name(spec.model, "model")
    problems += check_number(spec.replicas, "replicas", 0, MAX_REPLICAS, integer=True, hint="0 for 1")
    problems += check_number(spec.workers, "workers", 0, MAX_WORKERS, integer=True, hint="per replica; 0 for 1")
    problems += check_requirements(spec.requirements)
    problems += check_number(spec.slo.p95_latency_ms, "slo.p95_latency_ms", 0, MAX_SLO_MS, hint="milliseconds; 0 for none")
    problems += check_preferences(spec.placement)
    problems += _scaling(spec.scaling)
    problems += _routing(spec.routing)
    if len(spec.connects_to) > MAX_CONNECTS:
        problems.append(("connects_to", f"{len(spec.connects_to)} targets; at most {MAX_CONNECTS}"))
    seen = set()
    for i, target in enumerate(spec.connects_to[:MAX_CONNECTS]):
        path = f"connects_to[{i}]"
        problems += check_name(target, path)
        if target == spec.name:
            problems.append((path, f"service {shown(spec.name)} cannot connect to itself"))
        elif target in seen:
            problems.append((path, f"{shown(target)} is listed twice"))
        seen.add(target)
    return problems


def _scaling(sc: m.Scaling) -> list[tuple[str, str]]:
    problems = []
    if sc.mode not in ("", "fixed", "predictive", "reactive"):
        problems.append(("scaling.mode", f"{shown(sc.mode)} is not a scaling mode; use \"fixed\", \"predictive\" or \"reactive\""))
    problems += check_number(sc.min, "scaling.min", 0, MAX_REPLICAS, integer=True, hint="replicas; 0 for 1")
    problems += check_number(sc.max, "scaling.max", 0, MAX_REPLICAS, integer=True, hint="replicas; 0 for min")
    if 0 < sc.max < sc.min <= MAX_REPLICAS:
        problems.append(("scaling.max", f"scaling.max = {sc.max}: give {sc.min} to {MAX_REPLICAS} replicas (no fewer than scaling.min)"))
    problems += check_number(sc.target_rpm, "scaling.target_rpm", 0, MAX_RPM,
                             hint="requests per minute per replica; 0 for the measured capacity")
    problems += check_seconds(sc.zero_after_s, "scaling.zero_after", hint="a positive duration in seconds, at most 3650d; 0: never")
    if sc.mode in ("", "fixed"):
        if sc.vertical:
            problems.append(("scaling.vertical", "vertical scaling needs mode = \"predictive\" or \"reactive\""))
        if sc.zero_after_s > 0:
            problems.append(("scaling.zero_after", "scale to zero needs mode = \"predictive\" or \"reactive\""))
    return problems


def _routing(rt: m.Routing) -> list[tuple[str, str]]:
    problems = []
    if rt.mode not in ("", "local", "straightline"):
        problems.append(("routing.mode", f"{shown(rt.mode)} is not a routing mode; use \"local\" or \"straightline\""))
    problems += check_number(rt.on_demand_replicas, "routing.on_demand_replicas", 0, MAX_ON_DEMAND, integer=True,
                             hint="on-demand replicas per node")
    if rt.on_demand_replicas and rt.mode != "straightline":
        problems.append(("routing.on_demand_replicas", "on-demand replicas serve only with mode = \"straightline\""))
    problems += check_seconds(rt.idle_stop_s, "routing.idle_stop", hint="a positive duration in seconds, at most 3650d; 0 for 300")
    problems += check_number(rt.ood_share_max, "routing.ood_share_max", 0, 1, hint="a share, e.g. 0.25; 0 for 0.25")
    return problems


def scaled(spec: m.ServiceSpec) -> bool:
    return spec.scaling.mode in ("predictive", "reactive")


def replica_bounds(spec: m.ServiceSpec) -> tuple[int, int]:
    lo = max(spec.scaling.min, 1)
    return lo, max(spec.scaling.max, lo)


def size_of(doc: dict | None) -> dict | None:
    """The autoscaler's replica size of a stored service, when its spec scales vertically."""
    sc = ((doc or {}).get("spec") or {}).get("scaling") or {}
    return doc.get("size") if sc.get("mode") in ("predictive", "reactive") and sc.get("vertical") else None


def scaled_to_zero(doc: dict | None) -> bool:
    """The autoscaler scaled this stored service to zero, and its spec allows it."""
    sc = ((doc or {}).get("spec") or {}).get("scaling") or {}
    return (bool((doc or {}).get("zero")) and sc.get("mode") in ("predictive", "reactive")
            and float(sc.get("zero_after_s") or 0) > 0)


def sized(spec: m.ServiceSpec, doc: dict | None) -> m.ServiceSpec:
    """The spec with the autoscaler's replica size (scaling.vertical): its cpu and memory are what
    placement reserves, its workers what each replica runs."""
    size = size_of(doc)
    if not size:
        return spec
    out = m.ServiceSpec()
    out.CopyFrom(spec)
    out.requirements.cpu, out.requirements.memory_mb, out.workers = size["cpu"], size["memory_mb"] or 0, size["workers"]
    return out


def warm_replicas(spec: m.ServiceSpec, doc: dict | None) -> int:
    """Replicas running without a request waiting: 0 for a service scaled to zero (its placement
    keeps room for the replica its next request starts)."""
    return 0 if scaled_to_zero(doc) else replicas_of(spec, doc)


def replicas_of(spec: m.ServiceSpec, doc: dict | None = None) -> int:
    """Replicas to run: `replicas`, or with autoscaling the autoscaler's count (starting from
    `replicas`), within [scaling.min, scaling.max]."""
    if not scaled(spec):
        return spec.replicas or 1
    lo, hi = replica_bounds(spec)
    n = (doc or {}).get("scaled") or spec.replicas or lo
    return min(max(n, lo), hi)


def preferences_of(spec) -> Preferences:
    """Placement preferences of a service or app spec; anti-affinity by workload key."""
    p, r = spec.placement, spec.requirements
    return Preferences(spread=not p.pack, prefer_tiers=tuple(p.prefer_tiers), affinity=tuple(sorted(p.affinity.items())),
                       anti_affinity=anti_affinity_keys(p.anti_affinity), data=r.data, zone=r.zone)


def demand_of(r: m.Requirements, memory_mb: int, ports: tuple = ()) -> Demand:
    return Demand(cpu=r.cpu, memory_mb=memory_mb, tiers=tuple(r.tiers), labels=tuple(sorted(r.labels.items())), arch=r.arch,
                  gpus=r.gpu, gpu_model=r.gpu_model, gpu_memory_mb=r.gpu_memory_mb, zone=r.zone, data=r.data,
                  binaries=tuple(r.binaries), ports=ports)


def plan_message(plan: Plan, input_bounds_json: str = "") -> na.RoutingPlan:
    """A routing plan (control_plane/placement/forms.py) as the node receives it."""
    out = na.RoutingPlan(mode=plan.mode, slo_p95_ms=plan.slo_p95_ms, on_demand_replicas=plan.on_demand_replicas,
                         idle_stop_s=plan.idle_stop_s, ood_share_max=plan.ood_share_max, input_bounds_json=input_bounds_json)
    for f in plan.forms:
        out.forms.append(na.FormProfile(form=f.form, p95_ms=f.p95_ms, cold_start_s=f.cold_start_s,
                                        max_input_bytes=f.max_input_bytes, capacity_rps=f.capacity_rps,
                                        cost_per_hour=f.cost_per_hour))
    for p in plan.peers:
        out.peers.append(na.Peer(node_name=p.node_name, endpoint=p.endpoint, tier=p.tier))
    return out


class Services:
    """The `stratum_service` resource: desired-state CRUD and checks, and the service Kind of the
    reconciler (control_plane/reconcile/reconciler.py)."""

    kind, table = "service", "services"

    def __init__(self, store: Store, models: Models, nodes: NodeRegistry, reconciler: Reconciler, artifacts=None):
        self.store, self.models, self.nodes = store, models, nodes
        self.reconciler = reconciler
        self.series = ServiceSeries()  # per-minute metrics the nodes report (control_plane/autoscale/metrics.py)
        self.artifacts = artifacts  # ArtifactStore: drift references, for the routers' out-of-distribution check
        self._bounds: dict[str, str] = {}  # reference digest -> input bounds JSON
        self.reports: dict[str, dict[str, na.ServiceStatus]] = {}  # node id -> service -> last status
        self._bridging: set[str] = set()  # services whose old replicas serve until the new ones are ready
        self.samples: dict[str, list[dict]] = {}  # model name -> sampled request inputs since its last version
        # STRATUM_<NAME>_URL of what a workload connects to, for a node (control_plane/apps/wiring.py,
        # set by the apps resource): (workload key, connects_to, node id) -> env
        self.connections = None
        reconciler.register(self)

    @property
    def pools(self):
        return self.reconciler.pools

    # -- the reconciler's Kind ----------------------------------------------------------------
    def workload(self, doc: dict) -> Workload:
        spec = sized(json_format.ParseDict(doc["spec"], m.ServiceSpec()), doc)
        return Workload(self.kind, doc["name"], self._demand(spec), replicas_of(spec, doc), preferences_of(spec),
                        dict(doc["placement"]), deleting=bool(doc.get("deleting")))

    def placed(self, doc: dict, placement: dict[str, int]) -> None:
        doc["placement"] = placement

    def reports_on(self, node_id: str) -> set[str]:
        return set(self.reports.get(node_id, {}))

    def forget(self, name: str) -> None:
        self.series.forget(name)

    def docs(self) -> list[dict]:
        """Every stored service document (the autoscaler reads them once a tick)."""
        return self.store.list_docs(self.table)

    # -- desired state ------------------------------------------------------------------------
    def _doc(self, name: str) -> dict:
        doc = self.store.get_doc("services", name)
        if doc is None:
            raise NotFound(f"service {shown(name)} not found")
        return doc

    def _demand(self, spec: m.ServiceSpec) -> Demand:
        return self._needs(spec).demand

    def _needs(self, spec: m.ServiceSpec) -> ServiceNeeds:
        """What one replica needs, with the model's measured memory and latency when it has a version."""
        r = spec.requirements
        v = self.models.serving(spec.model) if spec.model else None
        measured = int(v.get("memory_mb") or 0) if v else 0
        # Headroom over the measured RSS: a replica's memory grows a little with traffic.
        memory = r.memory_mb or (measured + 64 if measured else DEFAULT_MEMORY_MB)
        return ServiceNeeds(name=spec.name or "what-if", demand=demand_of(r, memory), replicas=spec.replicas or 1,
                            model_memory_mb=measured, model_p95_ms=float(v.get("p95_ms") or 0) if v else 0.0,
                            slo_p95_ms=spec.slo.p95_latency_ms, memory_explicit=bool(r.memory_mb))

    def _place(self, spec: m.ServiceSpec, keep: dict[str, int] | None = None, replicas: int = 0) -> dict[str, int]:
        """Rank placement through the reconciler; replicas already placed stay where they still fit
        (moving one is not free), so only those of down nodes, or new ones, move."""
        replicas = replicas or replicas_of(spec)
        demand = self._demand(spec)
        w = Workload(self.kind, spec.name, demand, replicas, preferences_of(spec), dict(keep or {}))
        placement, reasons = self.reconciler.place(w)
        if reasons:
            raise FailedPrecondition(
                f"no room for {replicas} replica(s) of {spec.name!r} needing {demand.cpu:g} cores and {demand.memory_mb} MiB "
                f"each: " + "; ".join(r for r in reasons if r))
        return placement

    def check(self, spec: m.ServiceSpec, *, need_model: bool) -> None:
        problems = validate_spec(spec)
        if spec.model and self.store.get_doc("models", spec.model) is None and need_model:
            problems.append(("model", f"model {shown(spec.model)} not found; create it first (stratum_model)"))
        if problems:
            raise InvalidArgument(problems)

    def check_plan(self, spec: m.ServiceSpec, planned: list[m.ServiceSpec], planned_apps=()) -> list[str]:
        """Plan time: the spec is well formed, some ready node or cloud pool meets every requirement,
        and the services and apps planned in the same run fit together (control_plane/analysis). Every
        problem as a violation; when it passes, notes on what it would rent from cloud pools and the cost."""
        self.check(spec, need_model=False)
        snap = self.reconciler.snapshot(slots=False)
        others = [p for p in planned if p.name != spec.name]
        apps = self.reconciler.kinds.get("app")
        app_needs = [apps.needs(a) for a in planned_apps] if apps is not None else []
        used = snap.used({key_of(self.kind, spec.name), *(key_of(self.kind, p.name) for p in others),
                          *(key_of("app", a.name) for a in planned_apps)})
        needs = self._needs(spec)
        found = analyse(needs, snap.nodes, used, snap.pool_room)
        if not found:
            together = check_whole_plan([needs, *(self._needs(p) for p in others), *app_needs], snap.nodes, used,
                                        snap.pool_room)
            found = [v for v in together if v.service == spec.name] or together
        if found:
            raise InvalidArgument([(v.path, v.message if v.service in ("", spec.name) else f"{v.service}: {v.message}")
                                   for v in found])
        return self.cost_notes(spec)

    def cost_notes(self, spec: m.ServiceSpec) -> list[str]:
        """What the service would rent from cloud pools if placed now, and what that costs an hour."""
        if self.pools is None:
            return []
        snap = self.reconciler.snapshot()
        key = key_of(self.kind, spec.name)
        placement, _ = place_service(key, self._demand(spec), spec.replicas or 1, snap.nodes, snap.used({key}),
                                     preferences_of(spec), others=snap.placements(exclude=key))
        by_pool: dict[str, set] = {}
        prices = {n.pool: n.price_per_hour for n in snap.nodes if n.pool}
        for node_id, k in placement.items():
            if k and node_id.startswith(SLOT_PREFIX):
                by_pool.setdefault(node_id[len(SLOT_PREFIX):].split("#")[0], set()).add(node_id)
        return [f"{spec.name}: no enrolled node has room, so it would run on {len(ids)} VM(s) of cloud pool {pool}, "
                f"{len(ids) * prices.get(pool, 0.0):.4g} per hour" + ("" if prices.get(pool) else " (price unknown)")
                for pool, ids in sorted(by_pool.items())]

    def what_if(self, q: m.PlacementQuery) -> m.PlacementAnswer:
        """Where replicas with these requirements would go now, and why every other node was passed over."""
        spec = m.ServiceSpec(name="what-if", model=q.model, replicas=q.replicas, requirements=q.requirements,
                             placement=q.placement)
        problems = [p for p in validate_spec(spec) if p[0] != "model"]  # a what-if needs no model
        if problems:
            raise InvalidArgument(problems)
        if q.model and self.store.get_doc("models", q.model) is None:
            raise InvalidArgument([("model", f"model {shown(q.model)} not found")])
        templates = self.reconciler.snapshot(slots=False)
        snap = self.reconciler.snapshot()
        nodes, used = snap.nodes, snap.used()
        needs = self._needs(spec)
        out = m.PlacementAnswer(violations=[v.message for v in analyse(needs, templates.nodes, used, templates.pool_room)])
        placement, _ = place_service("what-if", needs.demand, needs.replicas, nodes, used, preferences_of(spec),
                                     others=snap.placements())
        if out.violations or sum(placement.values()) < needs.replicas:
            placement = {}
        names = {n.id: n.name for n in nodes}
        for node_id, n in sorted(placement.items(), key=lambda kv: names[kv[0]]):
            out.placements.append(m.PlannedPlacement(node_id=node_id, node_name=names[node_id], replicas=n))
        for node in sorted(nodes, key=lambda n: n.name):
            if node.id not in placement:
                out.rejected.append(m.Rejection(node_name=node.name, reason=why_not(node, needs.demand, used.get(node.id))
                                                or "not needed: the replicas fit on the nodes chosen"))
        return out

    def create(self, spec: m.ServiceSpec) -> m.Service:
        existing = self.store.get_doc("services", spec.name)
        if existing is not None and not existing.get("deleting"):
            if existing["spec"] == spec_json(spec):
                return self.get(spec.name)
            raise AlreadyExists(f"service {spec.name!r} already exists with a different spec")
        if existing is not None:
            raise FailedPrecondition(f"service {spec.name!r} is still being deleted; try again in a few seconds")
        self.check(spec, need_model=True)
        if self.models.serving(spec.model) is None:
            raise FailedPrecondition(f"model {spec.model!r} has no trained version yet")
        with self.reconciler.lock:
            doc = {"name": spec.name, "spec": spec_json(spec), "placement": self._place(spec), "deleting": False,
                   "created_at": time.time()}
            self.store.put_doc("services", spec.name, doc)
        event(log, "service created", service=spec.name, model=spec.model, placement=doc["placement"])
        self.reconciler.changed()
        return self.get(spec.name)

    def update(self, spec: m.ServiceSpec) -> m.Service:
        with self.reconciler.lock:
            doc = self._doc(spec.name)
            if doc.get("deleting"):
                raise NotFound(f"service {spec.name!r} is being deleted")
            self.check(spec, need_model=True)
            old = json_format.ParseDict(doc["spec"], m.ServiceSpec())
            keep = doc["placement"] if (old.requirements, old.placement) == (spec.requirements, spec.placement) else None
            if not scaled(spec):
                doc.pop("scaled", None)
            if not (scaled(spec) and spec.scaling.vertical):
                doc.pop("size", None)
            if not (scaled(spec) and spec.scaling.zero_after_s > 0):
                doc.pop("zero", None)
            doc.update(spec=spec_json(spec), placement=self._place(sized(spec, doc), keep, replicas_of(spec, doc)))
            self.store.put_doc("services", spec.name, doc)
        event(log, "service updated", service=spec.name, placement=doc["placement"])
        self.reconciler.changed()
        return self.get(spec.name)

    def delete(self, name: str) -> None:
        with self.reconciler.lock:
            doc = self.store.get_doc("services", name)
            if doc is None or doc.get("deleting"):
                return
            doc["deleting"] = True
            self.store.put_doc("services", name, doc)
        self.reconciler.mark_deleting(self.kind, name)
        event(log, "service deleting", service=name)
        self.reconciler.changed()

    def scale(self, name: str, replicas: int, why: str, *, size: dict | None = None, zero: bool = False) -> bool:
        """The autoscaler's count, and with scaling.vertical each replica's size (cpu, memory_mb,
        workers, capacity_rpm): place that many replicas (those placed stay where they still fit).
        `zero`: run none warm, keeping room for one (scale to zero). False when there is no room
        (everything is kept as it was)."""
        with self.reconciler.lock:
            doc = self.store.get_doc("services", name)
            if doc is None or doc.get("deleting"):
                return False
            spec = json_format.ParseDict(doc["spec"], m.ServiceSpec())
            trial = {**doc, "size": size} if size is not None else doc
            try:
                placement = self._place(sized(spec, trial), doc["placement"], replicas)
            except FailedPrecondition as e:
                event(log, "service not scaled", level=logging.WARNING, service=name, replicas=replicas, size=size,
                      error=str(e))
                return False
            doc.update(scaled=replicas, scaling_reason=why, placement=placement, zero=zero)
            if size is not None:
                doc["size"] = size
            self.store.put_doc("services", name, doc)
        event(log, "service scaled", service=name, replicas=0 if zero else replicas, size=size, why=why,
              placement=placement)
        self.reconciler.changed()
        return True

    def note_scaling(self, name: str, spec: dict, why: str) -> None:
        """The autoscaler's reason for keeping a service as it is, written on a fresh read: an update
        through the API since the autoscaler read the document must not be undone."""
        with self.reconciler.lock:
            fresh = self.store.get_doc("services", name)
            if fresh is not None and fresh["spec"] == spec and not fresh.get("deleting"):
                fresh["scaling_reason"] = why
                self.store.put_doc("services", name, fresh)

    def metrics(self, name: str, minutes: int) -> m.ServiceMetrics:
        self._doc(name)  # NOT_FOUND for an unknown service
        if minutes < 0 or minutes > self.series.retention:
            raise InvalidArgument([("minutes", f"give 0 to {self.series.retention} minutes")])
        return m.ServiceMetrics(points=[m.MetricPoint(**p) for p in self.series.points(name, minutes or 60)])

    def using_model(self, model: str) -> list[str]:
        return [d["name"] for d in self.store.list_docs("services") if d["spec"].get("model") == model]

    # -- observed state -----------------------------------------------------------------------
    def list(self) -> list[m.Service]:
        from control_plane.nodes import NodeLookup

        self.reconciler.refresh_reports()
        nodes, serving = NodeLookup(self.nodes), {}
        return [self.get(d["name"], doc=d, nodes=nodes, serving=serving) for d in self.docs()]

    def get(self, name: str, *, doc: dict | None = None, nodes=None, serving: dict | None = None) -> m.Service:
        """The service as the API answers it; when listing many, `doc`, `nodes` (a NodeLookup) and
        `serving` (model -> serving version, filled as met: many services share a model)."""
        if doc is None:
            self.reconciler.refresh_reports()
            doc = self._doc(name)
        nodes = nodes or self.nodes
        spec = json_format.ParseDict(doc["spec"], m.ServiceSpec())
        known = serving if serving is not None else {}
        if spec.model not in known:
            known[spec.model] = self.models.serving(spec.model)
        serving = known[spec.model]
        version = serving["version"] if serving else ""
        out = m.Service(spec=spec, version=version, bento_digest=serving["bento_digest"] if serving else "",
                        replicas=warm_replicas(spec, doc), scaling_reason=doc.get("scaling_reason", "") if scaled(spec) else "")
        size = size_of(doc)
        if size:
            out.size.CopyFrom(m.ReplicaSize(**size))
        problems, ready = [], True
        zero = out.replicas == 0  # scaled to zero: ready with no warm replica
        for node_id, replicas in sorted(doc["placement"].items()):
            if node_id.startswith(SLOT_PREFIX):  # placed on a VM a cloud pool is starting
                pool = node_id[len(SLOT_PREFIX):].split("#")[0]
                out.placements.append(m.Placement(node_id=node_id, node_name=f"{pool} (new VM)", replicas=replicas))
                problems.append(f"waiting for a new VM of cloud pool {pool} to join")
                ready = False
                continue
            try:
                node = nodes.get(node_id)
                node_name, node_state = node.name, node.state
                if node.drain and node_state == "ready":
                    problems.append(f"node {node_name} is drained; no other node has room for its replicas yet")
            except NotFound:
                node_name, node_state = node_id, "gone"
            st = self.reports.get(node_id, {}).get(name)
            p = m.Placement(node_id=node_id, node_name=node_name, replicas=0 if zero else replicas)
            if st is not None:
                p.ready_replicas, p.endpoint, p.version, p.error = st.ready_replicas, st.endpoint, st.version, st.error
                if st.endpoint:
                    out.endpoints.append(st.endpoint)
            out.placements.append(p)
            if node_state != "ready":
                problems.append(f"node {node_name} is {node_state}")
            if st is None or st.version != version or st.ready_replicas < (0 if zero else replicas):
                ready = False
            if st is not None and st.error:
                problems.append(f"{node_name}: {st.error}")
        if doc.get("deleting"):
            out.state = "deleting"
        elif any(st.state == "failed" for st in (self.reports.get(n, {}).get(name) for n in doc["placement"]) if st):
            out.state = "failed"
        else:
            out.state = "ready" if ready and not problems else "pending"
        out.message = "; ".join(problems)
        return out

    def endpoints(self, name: str) -> dict[str, str]:
        """Node id -> the endpoint the node reports for this service (apps connect to the nearest)."""
        return {n: st.endpoint for n, rep in self.reports.items() if (st := rep.get(name)) is not None and st.endpoint}

    def load_report(self, node_id: str, report: na.ServiceReport) -> None:
        self.reports[node_id] = {s.service: s for s in report.services if s.state != REMOVED}

    def on_report(self, node_id: str, report: na.ServiceReport) -> bool:
        before = self.reports.get(node_id, {})
        self.load_report(node_id, report)
        now = time.time()
        for s in report.services:
            if s.minutes:
                self.series.add(s.service, s.minutes)
        # Complete up to when the node took the minutes, not when the report arrived (a minute may
        # end in between); never later than now, whatever the node's clock says.
        taken = min(report.minutes_taken_at, now) if report.minutes_taken_at else now
        for s in self.reports[node_id].values():
            self.series.reported(s.service, node_id, taken)
            if s.samples_json:
                self._add_samples(s.service, s.samples_json)
        # a new endpoint: the other nodes' routers get it as a peer (straightline routing); and a
        # bridged service whose new replicas got ready: the old ones it kept can go
        def changed(s: na.ServiceStatus) -> bool:
            was = before.get(s.service)
            if s.endpoint and (was is None or was.endpoint != s.endpoint):
                return True
            return s.service in self._bridging and (was is None or was.ready_replicas != s.ready_replicas)

        return any(changed(s) for s in self.reports[node_id].values())

    def _add_samples(self, service: str, samples_json: str) -> None:
        doc = self.store.get_doc("services", service)
        if doc is None:
            return
        try:
            rows = [r for r in json.loads(samples_json) if isinstance(r, dict)]
        except ValueError:
            return
        buf = self.samples.setdefault(doc["spec"]["model"], [])
        buf.extend(rows)
        del buf[:-MAX_SAMPLES]

    # -- what nodes are told ------------------------------------------------------------------
    def bridged(self, doc: dict) -> dict[str, int]:
        """What the nodes are told to run: the placement, and, make before break, the replicas that
        serve now on nodes the placement takes them from, as many as the placement's replicas that
        are not ready yet (a VM still booting, a replica still starting). A decision that moves a
        service onto new VMs or nodes thus keeps it answering where it ran until the new replicas
        are ready, rather than stopping it at once; a scale-in (nothing waiting) goes at once."""
        placement = doc["placement"]
        name = doc["name"]

        def ready(node_id: str) -> int:
            st = self.reports.get(node_id, {}).get(name)
            return st.ready_replicas if st is not None else 0

        waiting = sum(max(0, n - ready(node_id)) for node_id, n in placement.items())
        out = dict(placement)
        if waiting <= 0 or scaled_to_zero(doc):
            return out
        for node_id in sorted(self.reports):
            extra = min(waiting, ready(node_id) - placement.get(node_id, 0))
            if extra > 0:
                out[node_id] = placement.get(node_id, 0) + extra
                waiting -= extra
        return out

    def assign(self, out: dict[str, na.Assignments], docs: list[dict]) -> None:
        serving: dict[str, dict | None] = {}
        nodes = None
        for doc in docs:
            spec = doc["spec"]
            told = self.bridged(doc)
            if told != doc["placement"]:
                self._bridging.add(doc["name"])
            else:
                self._bridging.discard(doc["name"])
            for node_id, n in told.items():
                if node_id not in out or not n:
                    continue
                if spec["model"] not in serving:
                    serving[spec["model"]] = self.models.serving(spec["model"])
                v = serving[spec["model"]]
                if v is None:
                    continue
                size, zero = size_of(doc), scaled_to_zero(doc)
                a = na.ServiceAssignment(service=doc["name"], version=v["version"], bento_digest=v["bento_digest"],
                                         bento_size_bytes=v["bento_size_bytes"], replicas=0 if zero else n,
                                         workers=(size or {}).get("workers") or spec.get("workers") or 1,
                                         cpu_limit=(size or {}).get("cpu") or 0.0,
                                         memory_limit_mb=(size or {}).get("memory_mb") or 0)
                if spec.get("connects_to") and self.connections is not None:
                    # replicas start without the URLs of targets that have no endpoint yet, and
                    # restart with them (their environment changed) once they have one
                    a.env.update(self.connections(key_of(self.kind, doc["name"]), spec["connects_to"], node_id) or {})
                routing = spec.get("routing") or {}
                if routing.get("mode") == "straightline":
                    if nodes is None:
                        nodes = {x.id: x for x in self.nodes.list(cp.ListNodesRequest())}
                    a.routing.CopyFrom(self._routing(node_id, {**doc, "placement": told}, v, nodes))
                if zero:  # no warm replica: the router starts one for the next request, stops it when idle
                    a.routing.mode = a.routing.mode or "local"
                    a.routing.on_demand_replicas = max(a.routing.on_demand_replicas, n)
                    a.routing.idle_stop_s = float(spec["scaling"]["zero_after_s"])
                out[node_id].services.append(a)

    def _routing(self, node_id: str, doc: dict, version: dict, nodes: dict) -> na.RoutingPlan:
        name = doc["name"]
        plan: Plan = routing_plan(node_id, doc["placement"], version, doc["spec"].get("routing") or {},
                                  float((doc["spec"].get("slo") or {}).get("p95_latency_ms") or 0.0),
                                  endpoints=self.endpoints(name), names={i: x.name for i, x in nodes.items()},
                                  tiers={i: x.tier for i, x in nodes.items()},
                                  ready={i for i, x in nodes.items() if x.state == "ready"})
        return plan_message(plan, self._input_bounds(version.get("reference_digest")))

    def _input_bounds(self, digest: str | None) -> str:
        if not digest or self.artifacts is None:
            return ""
        if digest not in self._bounds:
            try:
                with self.artifacts.open(digest) as f:
                    self._bounds[digest] = json.dumps(ood_bounds(json.loads(f.read())), sort_keys=True)
            except (OSError, ValueError, KeyError) as e:
                log.warning("no input bounds from reference %s: %s", digest[:19], e)
                return ""
        return self._bounds[digest]
