"""Services: desired state (store table `services`), placement, and what each node is told to run.

A service document holds the spec and its placement ({node id: replicas}); the version to run is
always the model's serving version, so a retrained or pinned model rolls out by itself.  Nodes
report what they run on their session (ServiceReport); those reports are kept in memory (a
restarted control plane gets fresh ones as nodes reconnect) and are the observed state the
service's `state` is computed from.

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
from control_plane.placement.first_fit import Demand, NodeView, Used, why_not
from control_plane.placement.forms import Plan, routing_plan
from control_plane.provision.pools import POOL_LABEL, SLOT_PREFIX
from control_plane.placement.rank import Preferences, place_service, rebalance
from control_plane.placement.types import Gpu
from control_plane.store import Store
from stratum.logs import event
from stratum.request_placement import ood_bounds
from stratum.validation import check_labels, check_name, check_tier
from stratum.v1 import control_plane_pb2 as cp, models_pb2 as m, node_agent_pb2 as na

log = logging.getLogger("stratum.services")

DEFAULT_MEMORY_MB = 256  # per replica when neither the spec nor the model's profile says
MAX_SAMPLES = 5000  # rows of request inputs kept per model for drift checks


def spec_json(spec: m.ServiceSpec) -> dict:
    return json_format.MessageToDict(spec, preserving_proto_field_name=True)


def validate_spec(spec: m.ServiceSpec) -> list[tuple[str, str]]:
    problems = check_name(spec.name)
    if not spec.model:
        problems.append(("model", "name the model to serve (stratum_model.<name>.id)"))
    if spec.replicas < 0 or spec.replicas > 64:
        problems.append(("replicas", "give 1 to 64 replicas"))
    if spec.workers < 0 or spec.workers > 32:
        problems.append(("workers", "give 1 to 32 workers per replica"))
    r = spec.requirements
    if r.cpu < 0:
        problems.append(("requirements.cpu", "give cores as a positive number, e.g. 0.5"))
    if r.memory_mb < 0:
        problems.append(("requirements.memory_mb", "give MiB as a positive whole number"))
    for i, tier in enumerate(r.tiers):
        problems += check_tier(tier, f"requirements.tiers[{i}]")
    problems += [(f"requirements.{f}", d) for f, d in check_labels(dict(r.labels))]
    if r.gpu < 0:
        problems.append(("requirements.gpu", "give a whole number of GPUs"))
    if r.gpu_memory_mb < 0:
        problems.append(("requirements.gpu_memory_mb", "give MiB as a positive whole number"))
    if spec.slo.p95_latency_ms < 0:
        problems.append(("slo.p95_latency_ms", "give milliseconds as a positive number"))
    for i, tier in enumerate(spec.placement.prefer_tiers):
        problems += check_tier(tier, f"placement.prefer_tiers[{i}]")
    for i, other in enumerate(spec.placement.anti_affinity):
        problems += check_name(other, f"placement.anti_affinity[{i}]")
    sc = spec.scaling
    if sc.mode not in ("", "fixed", "predictive", "reactive"):
        problems.append(("scaling.mode", f"{sc.mode!r} is not a scaling mode; use \"fixed\", \"predictive\" or \"reactive\""))
    if sc.min < 0 or sc.min > 64:
        problems.append(("scaling.min", "give 0 to 64 replicas"))
    if sc.max and (sc.max < sc.min or sc.max > 64):
        problems.append(("scaling.max", f"scaling.max = {sc.max}: give {max(sc.min, 1)} to 64 replicas"))
    if sc.target_rpm < 0:
        problems.append(("scaling.target_rpm", "give requests per minute as a positive number"))
    if sc.zero_after_s < 0:
        problems.append(("scaling.zero_after", "give a positive duration, e.g. \"10m\""))
    if sc.mode in ("", "fixed"):
        if sc.vertical:
            problems.append(("scaling.vertical", "vertical scaling needs mode = \"predictive\" or \"reactive\""))
        if sc.zero_after_s > 0:
            problems.append(("scaling.zero_after", "scale to zero needs mode = \"predictive\" or \"reactive\""))
    rt = spec.routing
    if rt.mode not in ("", "local", "straightline"):
        problems.append(("routing.mode", f"{rt.mode!r} is not a routing mode; use \"local\" or \"straightline\""))
    if not 0 <= rt.on_demand_replicas <= 16:
        problems.append(("routing.on_demand_replicas", "give 0 to 16 on-demand replicas per node"))
    if rt.on_demand_replicas and rt.mode != "straightline":
        problems.append(("routing.on_demand_replicas", "on-demand replicas serve only with mode = \"straightline\""))
    if rt.idle_stop_s < 0:
        problems.append(("routing.idle_stop", "give a positive duration, e.g. \"5m\""))
    if not 0 <= rt.ood_share_max <= 1:
        problems.append(("routing.ood_share_max", "give a share from 0 to 1, e.g. 0.25"))
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


def node_view(n) -> NodeView:
    c = n.capabilities
    data = tuple(sorted(x.strip() for x in n.labels.get("data", "").split(",") if x.strip()))
    return NodeView(n.id, n.name, n.tier, dict(n.labels), c.arch, float(c.cpu_cores), int(c.memory_mb), n.state == "ready",
                    gpus=tuple(Gpu(g.model, int(g.memory_mb)) for g in c.gpus), zone=n.labels.get("zone", ""), datasets=data)


def preferences_of(spec: m.ServiceSpec) -> Preferences:
    p, r = spec.placement, spec.requirements
    return Preferences(spread=not p.pack, prefer_tiers=tuple(p.prefer_tiers), affinity=tuple(sorted(p.affinity.items())),
                       anti_affinity=tuple(p.anti_affinity), data=r.data, zone=r.zone)


def demand_of(r: m.Requirements, memory_mb: int) -> Demand:
    return Demand(cpu=r.cpu, memory_mb=memory_mb, tiers=tuple(r.tiers), labels=tuple(sorted(r.labels.items())), arch=r.arch,
                  gpus=r.gpu, gpu_model=r.gpu_model, gpu_memory_mb=r.gpu_memory_mb, zone=r.zone, data=r.data)


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
    def __init__(self, store: Store, models: Models, nodes: NodeRegistry, artifacts=None, pools=None):
        self.store, self.models, self.nodes = store, models, nodes
        self.pools = pools  # control_plane/provision/pools.py: VMs placement may ask for when nodes are full
        self.series = ServiceSeries()  # per-minute metrics the nodes report (control_plane/autoscale/metrics.py)
        self.artifacts = artifacts  # ArtifactStore: drift references, for the routers' out-of-distribution check
        self._bounds: dict[str, str] = {}  # reference digest -> input bounds JSON
        self.reports: dict[str, dict[str, na.ServiceStatus]] = {}  # node id -> service -> last status
        self.samples: dict[str, list[dict]] = {}  # model name -> sampled request inputs since its last version
        self._sessions: dict[str, asyncio.Queue] = {}  # node id -> its session's outbound queue
        self._generation = int(time.time() * 1000)  # increases across restarts too
        self._sent: dict[str, str] = {}  # node id -> fingerprint of the last assignments sent
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deleting: set[str] | None = None  # services being deleted; None: not read from the store yet
        self.waiting_for_vms = False  # some replica is placed on a cloud VM that has not joined yet

    # -- desired state ------------------------------------------------------------------------
    def _views(self, slots: bool = True) -> tuple[list[NodeView], dict[str, int]]:
        """Enrolled nodes, and the VMs cloud pools may still start (placement: one view per VM;
        analysis: one per pool, with how many it may start)."""
        views = [node_view(n) for n in self.nodes.list(cp.ListNodesRequest())]
        if self.pools is None:
            return views, {}
        more, room = self.pools.templates(slots)
        return views + more, room

    def tell_pools(self) -> None:
        """How many VMs each pool should run for the services: its joined VMs that hold replicas,
        plus one per new-VM slot replicas were placed on."""
        if self.pools is None:
            return
        by_node = {n.id: n.labels.get(POOL_LABEL, "") for n in self.nodes.list(cp.ListNodesRequest())}
        used: dict[str, set] = {}
        self.waiting_for_vms = False
        for d in self.store.list_docs("services"):
            if d.get("deleting"):
                continue
            for node_id, k in d["placement"].items():
                if not k:
                    continue
                slot = node_id.startswith(SLOT_PREFIX)
                self.waiting_for_vms |= slot
                pool = node_id[len(SLOT_PREFIX):].split("#")[0] if slot else by_node.get(node_id)
                if pool:
                    used.setdefault(pool, set()).add(node_id)
        self.pools.set_demand({pool: len(ids) for pool, ids in used.items()})

    def _doc(self, name: str) -> dict:
        doc = self.store.get_doc("services", name)
        if doc is None:
            raise NotFound(f"service {name!r} not found")
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

    def _used(self, exclude: str | set) -> dict[str, Used]:
        exclude = {exclude} if isinstance(exclude, str) else exclude
        used: dict[str, Used] = {}
        for doc in self.store.list_docs("services"):
            if doc["name"] in exclude or doc.get("deleting"):
                continue
            d = self._demand(sized(json_format.ParseDict(doc["spec"], m.ServiceSpec()), doc))
            for node_id, n in doc["placement"].items():
                u = used.setdefault(node_id, Used())
                u.cpu += d.cpu * n
                u.memory_mb += d.memory_mb * n
                u.gpus += d.gpus_held * n
        return used

    def _others(self, exclude: str) -> dict[str, dict[str, int]]:
        return {d["name"]: d["placement"] for d in self.store.list_docs("services")
                if d["name"] != exclude and not d.get("deleting")}

    def _place(self, spec: m.ServiceSpec, keep: dict[str, int] | None = None, replicas: int = 0) -> dict[str, int]:
        """Rank placement (control_plane/placement/rank.py); replicas already placed stay where they
        still fit (moving one is not free), so only those of down nodes, or new ones, move."""
        nodes, _ = self._views()
        replicas = replicas or replicas_of(spec)
        demand = self._demand(spec)
        placement, reasons = place_service(spec.name, demand, replicas, nodes, self._used(spec.name), preferences_of(spec),
                                           current=keep, others=self._others(spec.name))
        if reasons:
            raise FailedPrecondition(
                f"no room for {replicas} replica(s) of {spec.name!r} needing {demand.cpu:g} cores and {demand.memory_mb} MiB "
                f"each: " + "; ".join(r for r in reasons if r))
        return placement

    def check(self, spec: m.ServiceSpec, *, need_model: bool) -> None:
        problems = validate_spec(spec)
        if spec.model and self.store.get_doc("models", spec.model) is None and need_model:
            problems.append(("model", f"model {spec.model!r} not found; create it first (stratum_model)"))
        if problems:
            raise InvalidArgument(problems)

    def check_plan(self, spec: m.ServiceSpec, planned: list[m.ServiceSpec]) -> list[str]:
        """Plan time: the spec is well formed, some ready node or cloud pool meets every requirement,
        and the services planned in the same run fit together (control_plane/analysis). Every problem
        as a violation; when it passes, notes on what it would rent from cloud pools and the cost."""
        self.check(spec, need_model=False)
        nodes, room = self._views(slots=False)
        others = [p for p in planned if p.name != spec.name]
        used = self._used({spec.name, *(p.name for p in others)})
        needs = self._needs(spec)
        found = analyse(needs, nodes, used, room)
        if not found:
            together = check_whole_plan([needs, *(self._needs(p) for p in others)], nodes, used, room)
            found = [v for v in together if v.service == spec.name] or together
        if found:
            raise InvalidArgument([(v.path, v.message if v.service in ("", spec.name) else f"{v.service}: {v.message}")
                                   for v in found])
        return self.cost_notes(spec)

    def cost_notes(self, spec: m.ServiceSpec) -> list[str]:
        """What the service would rent from cloud pools if placed now, and what that costs an hour."""
        if self.pools is None:
            return []
        nodes, _ = self._views()
        placement, _ = place_service(spec.name, self._demand(spec), spec.replicas or 1, nodes, self._used(spec.name),
                                     preferences_of(spec), others=self._others(spec.name))
        by_pool: dict[str, set] = {}
        prices = {n.pool: n.price_per_hour for n in nodes if n.pool}
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
            raise InvalidArgument([("model", f"model {q.model!r} not found")])
        templates, room = self._views(slots=False)
        nodes, _ = self._views()
        used = self._used(set())
        needs = self._needs(spec)
        out = m.PlacementAnswer(violations=[v.message for v in analyse(needs, templates, used, room)])
        placement, _ = place_service("what-if", needs.demand, needs.replicas, nodes, used, preferences_of(spec),
                                     others=self._others(""))
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
        doc = {"name": spec.name, "spec": spec_json(spec), "placement": self._place(spec), "deleting": False,
               "created_at": time.time()}
        self.store.put_doc("services", spec.name, doc)
        event(log, "service created", service=spec.name, model=spec.model, placement=doc["placement"])
        self.tell_pools()
        self.push()
        return self.get(spec.name)

    def update(self, spec: m.ServiceSpec) -> m.Service:
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
        self.tell_pools()
        self.push()
        return self.get(spec.name)

    def delete(self, name: str) -> None:
        doc = self.store.get_doc("services", name)
        if doc is None or doc.get("deleting"):
            return
        doc["deleting"] = True
        self.store.put_doc("services", name, doc)
        if self._deleting is not None:
            self._deleting.add(name)
        event(log, "service deleting", service=name)
        self.tell_pools()
        self.push()

    def nodes_in_use(self) -> set[str]:
        """Ids of nodes that some service has replicas on (a cloud VM among them is not idle)."""
        return {n for d in self.store.list_docs("services") for n, k in d["placement"].items() if k}

    def scale(self, name: str, replicas: int, why: str, *, size: dict | None = None, zero: bool = False) -> bool:
        """The autoscaler's count, and with scaling.vertical each replica's size (cpu, memory_mb,
        workers, capacity_rpm): place that many replicas (those placed stay where they still fit).
        `zero`: run none warm, keeping room for one (scale to zero). False when there is no room
        (everything is kept as it was)."""
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
        self.tell_pools()
        self.push()
        return True

    def metrics(self, name: str, minutes: int) -> m.ServiceMetrics:
        self._doc(name)  # NOT_FOUND for an unknown service
        if minutes < 0 or minutes > self.series.retention:
            raise InvalidArgument([("minutes", f"give 0 to {self.series.retention} minutes")])
        return m.ServiceMetrics(points=[m.MetricPoint(**p) for p in self.series.points(name, minutes or 60)])

    def using_model(self, model: str) -> list[str]:
        return [d["name"] for d in self.store.list_docs("services") if d["spec"].get("model") == model]

    # -- observed state -----------------------------------------------------------------------
    def get(self, name: str) -> m.Service:
        doc = self._doc(name)
        spec = json_format.ParseDict(doc["spec"], m.ServiceSpec())
        serving = self.models.serving(spec.model)
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
                node = self.nodes.get(node_id)
                node_name, node_state = node.name, node.state
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

    def on_report(self, node_id: str, report: na.ServiceReport) -> None:
        before = {name: st.endpoint for name, st in self.reports.get(node_id, {}).items()}
        self.reports[node_id] = {s.service: s for s in report.services}
        now = time.time()
        for s in report.services:
            if s.minutes:
                self.series.add(s.service, s.minutes)
            self.series.reported(s.service, node_id, now)
        if any(before.get(s.service) != s.endpoint for s in report.services if s.endpoint):
            self.push()  # a new endpoint: the other nodes' routers get it as a peer (straightline routing)
        for s in report.services:
            if s.samples_json:
                self._add_samples(s.service, s.samples_json)
        self.finish_deletes()

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

    def finish_deletes(self) -> None:
        if self._deleting is not None and not self._deleting:
            return  # nothing is being deleted: no need to read the services on every report
        self._deleting = set()
        for doc in self.store.list_docs("services"):
            if not doc.get("deleting"):
                continue
            still = [n for n in doc["placement"] if doc["name"] in self.reports.get(n, {}) and self._node_ready(n)]
            if not still:
                self.store.delete_doc("services", doc["name"])
                self.series.forget(doc["name"])
                event(log, "service deleted", service=doc["name"])
            else:
                self._deleting.add(doc["name"])

    def _node_ready(self, node_id: str) -> bool:
        try:
            return self.nodes.get(node_id).state == "ready"
        except NotFound:
            return False

    def rebalance(self) -> None:
        """After nodes went down or joined: move the replicas of down nodes to nodes that fit, and make
        a bounded number of moves that improve spread (control_plane/placement/rank.py: rebalance)."""
        docs = [d for d in self.store.list_docs("services") if not d.get("deleting")]
        if not docs:
            return
        nodes, _ = self._views()
        specs = {d["name"]: sized(json_format.ParseDict(d["spec"], m.ServiceSpec()), d) for d in docs}
        services = {d["name"]: (self._demand(specs[d["name"]]), replicas_of(specs[d["name"]], d),
                                preferences_of(specs[d["name"]])) for d in docs}
        new = rebalance(services, nodes, {d["name"]: d["placement"] for d in docs})
        for d in docs:
            placement = {k: v for k, v in new.get(d["name"], {}).items() if v}
            if placement != d["placement"]:
                d["placement"] = placement
                self.store.put_doc("services", d["name"], d)
                event(log, "service moved", service=d["name"], placement=placement)
        self.tell_pools()
        self.push()

    # -- what nodes are told ------------------------------------------------------------------
    def assignments_for(self, node_id: str) -> na.Assignments:
        return self._assignments([node_id])[node_id]

    def _assignments(self, node_ids) -> dict[str, na.Assignments]:
        """Assignments for these nodes, from one read of the services (a push reaches every session)."""
        out = {n: na.Assignments(generation=self._generation) for n in node_ids}
        serving: dict[str, dict | None] = {}
        nodes = None
        for doc in self.store.list_docs("services"):
            if doc.get("deleting"):
                continue
            spec = doc["spec"]
            for node_id, n in doc["placement"].items():
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
                routing = spec.get("routing") or {}
                if routing.get("mode") == "straightline":
                    if nodes is None:
                        nodes = {x.id: x for x in self.nodes.list(cp.ListNodesRequest())}
                    a.routing.CopyFrom(self._routing(node_id, doc, v, nodes))
                if zero:  # no warm replica: the router starts one for the next request, stops it when idle
                    a.routing.mode = a.routing.mode or "local"
                    a.routing.on_demand_replicas = max(a.routing.on_demand_replicas, n)
                    a.routing.idle_stop_s = float(spec["scaling"]["zero_after_s"])
                out[node_id].services.append(a)
        return out

    def _routing(self, node_id: str, doc: dict, version: dict, nodes: dict) -> na.RoutingPlan:
        name = doc["name"]
        endpoints = {n: st.endpoint for n, rep in self.reports.items() if (st := rep.get(name)) is not None and st.endpoint}
        plan: Plan = routing_plan(node_id, doc["placement"], version, doc["spec"].get("routing") or {},
                                  float((doc["spec"].get("slo") or {}).get("p95_latency_ms") or 0.0),
                                  endpoints=endpoints, names={i: x.name for i, x in nodes.items()},
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

    def open_session(self, node_id: str) -> asyncio.Queue:
        self._loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()
        self._sessions[node_id] = q
        self._sent.pop(node_id, None)
        return q

    def close_session(self, node_id: str, q: asyncio.Queue) -> None:
        if self._sessions.get(node_id) is q:
            del self._sessions[node_id]

    def push(self, node_ids: list[str] | None = None) -> None:
        """Send connected nodes (all, or these) their assignments if they changed since the last send.
        Callable from any thread: the sessions' queues belong to the event loop."""
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and running is not loop:
            loop.call_soon_threadsafe(self._push, node_ids)
        else:
            self._push(node_ids)

    def _push(self, node_ids: list[str] | None = None) -> None:
        targets = {n: q for n, q in self._sessions.items() if node_ids is None or n in node_ids}
        if not targets:
            return
        assignments = self._assignments(targets)
        for node_id, q in targets.items():
            a = assignments[node_id]
            key = json.dumps([(s.service, s.bento_digest, s.replicas, s.workers, s.cpu_limit, s.memory_limit_mb,
                               s.routing.SerializeToString().hex())
                              for s in a.services])
            if self._sent.get(node_id) == key:
                continue
            self._generation += 1
            a.generation = self._generation
            self._sent[node_id] = key
            q.put_nowait(na.ControlMessage(assignments=a))
