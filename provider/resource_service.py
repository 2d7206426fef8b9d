"""Resource `stratum_service`: serve a model's current version as replicas on nodes.

CreateService/UpdateService record the desired state and return at once; nodes fetch the bento
and start `bentoml serve` replicas behind an endpoint.  Create and update wait (up to
`timeouts`, default 10m) until every placement reports the model's serving version ready, so
`endpoints` in state answer when apply ends.  Delete waits until the service is gone from every
node: its replicas are stopped and its ports free when `terraform destroy` returns.

The version served follows the model (retraining, `pinned_version`): a new version rolls the
replicas one at a time, new ready before old stops.
"""

from __future__ import annotations

import time
from typing import Optional

import grpc
from tf.iface import CreateContext, DeleteContext, ImportContext, PlanContext, ReadContext, Resource, State, UpdateContext
from tf.schema import Attribute, Schema
from tf.types import Bool, List, Map, String, Unknown
from tf.utils import Diagnostics

from provider.client import ApiError
from provider.common import (check_timeouts, client_of, delete_and_wait, get_for_import, name_taken, read_by_name,
                             wholly_known)
from provider.nested import NestedAttribute, Nesting, Number
from stratum.durations import format_duration, parse_duration
from stratum.v1 import models_pb2 as m, plans_pb2 as plans

SPEC_FIELDS = ("name", "model", "replicas", "workers", "requirements", "slo", "placement", "routing", "scaling", "connects_to")
COMPUTED = ("endpoints", "placements", "version", "state", "running_replicas")
DEFAULT_TIMEOUT = "10m"
POLL_S = 0.5


def requirements_of(r: dict | None) -> m.Requirements:
    r = r or {}
    return m.Requirements(cpu=float(r.get("cpu") or 0), memory_mb=int(r.get("memory_mb") or 0),
                          tiers=list(r.get("tiers") or []), labels=dict(r.get("labels") or {}), arch=r.get("arch") or "",
                          gpu=int(r.get("gpu") or 0), gpu_model=r.get("gpu_model") or "",
                          gpu_memory_mb=int(r.get("gpu_memory_mb") or 0), zone=r.get("zone") or "", data=r.get("data") or "",
                          binaries=list(r.get("binaries") or []))


def preferences_of(p: dict | None) -> m.PlacementPreferences:
    p = p or {}
    return m.PlacementPreferences(pack=bool(p.get("pack")), prefer_tiers=list(p.get("prefer_tiers") or []),
                                  affinity=dict(p.get("affinity") or {}), anti_affinity=list(p.get("anti_affinity") or []))


def routing_of(r: dict | None) -> m.Routing:
    r = r or {}
    try:
        idle = parse_duration(r["idle_stop"]) if r.get("idle_stop") else 0.0
    except ValueError:
        idle = 0.0  # check_routing reports it at plan, with the parser's message
    return m.Routing(mode=r.get("mode") or "", on_demand_replicas=int(r.get("on_demand_replicas") or 0), idle_stop_s=idle,
                     ood_share_max=float(r.get("ood_share_max") or 0))


def routing_state(r: m.Routing) -> Optional[dict]:
    if r == m.Routing():
        return None
    return {"mode": r.mode or None, "on_demand_replicas": r.on_demand_replicas or None,
            "idle_stop": format_duration(r.idle_stop_s) if r.idle_stop_s else None, "ood_share_max": r.ood_share_max or None}


def scaling_of(s: dict | None) -> m.Scaling:
    s = s or {}
    try:
        zero = parse_duration(s["zero_after"]) if s.get("zero_after") else 0.0
    except ValueError:
        zero = 0.0  # check_routing reports it at plan, with the parser's message
    return m.Scaling(mode=s.get("mode") or "", min=int(s.get("min") or 0), max=int(s.get("max") or 0),
                     target_rpm=float(s.get("target_rpm") or 0), vertical=bool(s.get("vertical")), zero_after_s=zero)


def scaling_state(s: m.Scaling) -> Optional[dict]:
    if s == m.Scaling():
        return None
    return {"mode": s.mode or None, "min": s.min or None, "max": s.max or None, "target_rpm": s.target_rpm or None,
            "vertical": s.vertical or None, "zero_after": format_duration(s.zero_after_s) if s.zero_after_s else None}


def check_routing(diags: Diagnostics, planned: State) -> None:
    """Durations parse (the server checks everything else, on attribute paths)."""
    for block, attr in (("routing", "idle_stop"), ("scaling", "zero_after")):
        value = (planned.get(block) or {}).get(attr)
        if isinstance(value, str):
            try:
                parse_duration(value)
            except ValueError as e:
                diags.add_error(f"Invalid {block}.{attr}", str(e), path=[block, attr])


def to_spec(values: State) -> m.ServiceSpec:
    return m.ServiceSpec(
        name=values["name"], model=values["model"] or "", replicas=int(values.get("replicas") or 0),
        workers=int(values.get("workers") or 0), requirements=requirements_of(values.get("requirements")),
        slo=m.Slo(p95_latency_ms=float((values.get("slo") or {}).get("p95_latency_ms") or 0)),
        placement=preferences_of(values.get("placement")), routing=routing_of(values.get("routing")),
        scaling=scaling_of(values.get("scaling")), connects_to=list(values.get("connects_to") or []))


def requirements_state(r: m.Requirements) -> Optional[dict]:
    if r == m.Requirements():
        return None
    return {"cpu": r.cpu or None, "memory_mb": r.memory_mb or None, "tiers": list(r.tiers) or None,
            "labels": dict(r.labels) or None, "arch": r.arch or None, "gpu": r.gpu or None, "gpu_model": r.gpu_model or None,
            "gpu_memory_mb": r.gpu_memory_mb or None, "zone": r.zone or None, "data": r.data or None,
            "binaries": list(r.binaries) or None}


def preferences_state(p: m.PlacementPreferences) -> Optional[dict]:
    if p == m.PlacementPreferences():
        return None
    return {"pack": p.pack or None, "prefer_tiers": list(p.prefer_tiers) or None, "affinity": dict(p.affinity) or None,
            "anti_affinity": list(p.anti_affinity) or None}


REQUIREMENT_ATTRIBUTES = [
    Attribute("cpu", Number(), optional=True, description="Cores per replica."),
    Attribute("memory_mb", Number(), optional=True, description="MiB per replica; default: the model's measured memory."),
    Attribute("tiers", List(String()), optional=True, description="Tiers it may run on: `edge`, `fog`, `cloud`."),
    Attribute("labels", Map(String()), optional=True, description="Labels a node must carry."),
    Attribute("arch", String(), optional=True, description="CPU architecture, e.g. `x86_64`."),
    Attribute("gpu", Number(), optional=True, description="GPUs per replica."),
    Attribute("gpu_model", String(), optional=True, description="Text the GPU model must contain, e.g. `A100`."),
    Attribute("gpu_memory_mb", Number(), optional=True, description="Memory each GPU must have, MiB."),
    Attribute("zone", String(), optional=True, description="The node's `zone` label must be this."),
    Attribute("data", String(), optional=True, description="A dataset that must be local to the node (its `data` label lists them)."),
    Attribute("binaries", List(String()), optional=True, description="Programs the node must have, e.g. `[\"mosquitto\"]`."),
]
PREFERENCE_ATTRIBUTES = [
    Attribute("pack", Bool(), optional=True, description="Allow several replicas on one node even when others fit (default: spread)."),
    Attribute("prefer_tiers", List(String()), optional=True, description="Tiers in order of preference."),
    Attribute("affinity", Map(String()), optional=True, description="Node labels preferred, not required."),
    Attribute("anti_affinity", List(String()), optional=True, description="Services whose nodes to avoid."),
]


ROUTING_ATTRIBUTES = [
    Attribute("mode", String(), optional=True,
              description="`local` (default): each request to a replica on the node it reaches. `straightline`: per "
                          "request stream, by rate, input size and out-of-distribution share, to a local replica, "
                          "a replica on another node, or an on-demand replica."),
    Attribute("on_demand_replicas", Number(), optional=True,
              description="On-demand replicas a node may start for rare streams (scale to zero); default 0."),
    Attribute("idle_stop", String(), optional=True, description="An on-demand replica stops after this long idle; default `5m`."),
    Attribute("ood_share_max", Number(), optional=True,
              description="Share of out-of-distribution inputs above which a stream goes to another node's replica; default 0.25."),
]


def _state(svc: m.Service, prior: Optional[State]) -> State:
    prior = dict(prior or {})
    spec = svc.spec
    if not prior.get("name"):  # import
        r = spec.requirements
        prior.update(name=spec.name, model=spec.model, replicas=spec.replicas or None, workers=spec.workers or None,
                     requirements=requirements_state(r), placement=preferences_state(spec.placement),
                     slo={"p95_latency_ms": spec.slo.p95_latency_ms} if spec.slo.p95_latency_ms else None,
                     routing=routing_state(spec.routing), scaling=scaling_state(spec.scaling),
                     connects_to=list(spec.connects_to) or None, timeouts=None)
    prior.update(
        id=spec.name, version=svc.version or None, state=svc.state, endpoints=list(svc.endpoints),
        running_replicas=svc.replicas,
        placements=[{"node_id": p.node_id, "node_name": p.node_name, "replicas": p.replicas,
                     "ready_replicas": p.ready_replicas, "endpoint": p.endpoint or None, "version": p.version or None}
                    for p in svc.placements])
    return prior


def _timeout(values: State, op: str) -> float:
    return parse_duration((values.get("timeouts") or {}).get(op) or DEFAULT_TIMEOUT)


def wait_ready(client, name: str, timeout_s: float) -> tuple[Optional[m.Service], str]:
    deadline = time.monotonic() + timeout_s
    while True:
        svc = client.call("GetService", m.GetServiceRequest(name=name), action=f"waiting for service {name!r}")
        if svc.state == "ready":
            return svc, ""
        if svc.state == "failed":
            return svc, svc.message or "a node could not start it"
        if time.monotonic() >= deadline:
            return svc, f"not ready after {timeout_s:.0f}s: {svc.message or 'replicas still starting'}"
        time.sleep(POLL_S)


class ServiceResource(Resource):
    def __init__(self, provider):
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return "service"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=0,
            description="An ML service: replicas of a model's serving version on nodes that meet its requirements, behind an endpoint per node.",
            attributes=[
                Attribute("id", String(), computed=True, description="Same as `name`."),
                Attribute("name", String(), required=True, requires_replace=True, description="Unique name. Changing it replaces the service."),
                Attribute("model", String(), required=True, description="Name of the model to serve (`stratum_model.<x>.id`)."),
                Attribute("replicas", Number(), optional=True, description="Replicas to run (default 1)."),
                Attribute("workers", Number(), optional=True, description="Worker processes per replica (default 1)."),
                NestedAttribute("requirements", REQUIREMENT_ATTRIBUTES, Nesting.SINGLE, optional=True,
                                description="What a node must offer each replica; checked at plan time against ready nodes."),
                NestedAttribute("slo", [
                    Attribute("p95_latency_ms", Number(), optional=True, description="95th percentile latency objective of `/predict`, ms."),
                ], Nesting.SINGLE, optional=True, description="Latency objective; a model measured slower fails at plan time."),
                NestedAttribute("placement", PREFERENCE_ATTRIBUTES, Nesting.SINGLE, optional=True,
                                description="Spread and placement preferences."),
                NestedAttribute("scaling", [
                    Attribute("mode", String(), optional=True,
                              description="`fixed` (default: `replicas`), `predictive` (forecast load over the lead time, "
                                          "with a reactive safety net) or `reactive` (last minute at 70 % utilisation)."),
                    Attribute("min", Number(), optional=True, description="Fewest replicas (default 1)."),
                    Attribute("max", Number(), optional=True, description="Most replicas (default `min`)."),
                    Attribute("target_rpm", Number(), optional=True,
                              description="Requests per minute one replica takes (default: the model's measured capacity; "
                                          "with `vertical`, a 1-core replica)."),
                    Attribute("vertical", Bool(), optional=True,
                              description="Also change each replica's cpu quota, memory limit and workers among the sizes "
                                          "measured at packaging, choosing the fewest cores that hold the load."),
                    Attribute("zero_after", String(), optional=True,
                              description="Idle time after which no replica runs warm; the next request starts one "
                                          "(scale to zero), e.g. `10m`."),
                ], Nesting.SINGLE, optional=True, description="How the replica count follows the load."),
                NestedAttribute("routing", ROUTING_ATTRIBUTES, Nesting.SINGLE, optional=True,
                                description="How each node's endpoint sends requests to the service's forms "
                                            "(request placement after StraightLine)."),
                Attribute("connects_to", List(String()), optional=True,
                          description="Apps and services the replicas talk to, by name (`stratum_app.<x>.id`)."),
                NestedAttribute("timeouts", [
                    Attribute("create", String(), optional=True, description="Default `10m`."),
                    Attribute("update", String(), optional=True, description="Default `10m`."),
                    Attribute("delete", String(), optional=True, description="Default `10m`."),
                ], Nesting.SINGLE, optional=True, description="How long apply and destroy wait for the nodes."),
                Attribute("endpoints", List(String()), computed=True, description="Base URLs answering `POST <endpoint>/predict` with `{\"instances\": [...]}`."),
                NestedAttribute("placements", [
                    Attribute("node_id", String(), computed=True, description="Node id."),
                    Attribute("node_name", String(), computed=True, description="Node name."),
                    Attribute("replicas", Number(), computed=True, description="Replicas on that node."),
                    Attribute("ready_replicas", Number(), computed=True, description="Of those, ready when last read."),
                    Attribute("endpoint", String(), computed=True, description="The node's endpoint for the service."),
                    Attribute("version", String(), computed=True, description="Model version the node serves."),
                ], Nesting.LIST, computed=True, description="Where the replicas run."),
                Attribute("version", String(), computed=True, description="Model version being served."),
                Attribute("state", String(), computed=True, description="`ready`, `pending`, `failed` or `deleting`."),
                Attribute("running_replicas", Number(), computed=True,
                          description="Replicas it runs now: `replicas`, or the autoscaler's count (0 when scaled to zero)."),
            ],
        )

    def plan(self, ctx: PlanContext, current: Optional[State], planned: State) -> Optional[State]:
        diags = ctx.diagnostics
        if current is None:
            planned["id"] = planned["name"]
        elif ctx.changed_fields & {"model", "replicas", "workers", "requirements", "placement", "scaling", "connects_to"}:
            for k in COMPUTED:
                planned[k] = Unknown
        elif not ctx.changed_fields & set(SPEC_FIELDS):
            return planned
        check_timeouts(diags, planned, ("create", "update", "delete"))
        check_routing(diags, planned)
        values = {k: planned.get(k) for k in SPEC_FIELDS}
        client = getattr(self.provider, "client", None)
        if client is not None and wholly_known(values):
            # Services planned earlier in this run need room too: the last one planned sees them all,
            # so services that each fit but together do not fail the plan (this provider process
            # lives for one terraform command). Terraform plans resources in parallel threads, so
            # each registers before its check: the last to register is checked with all the others.
            spec = to_spec(values)
            in_run = self.provider.__dict__.setdefault("planned_services", {})
            in_run[spec.name] = spec
            others = [s for name, s in list(in_run.items()) if name != spec.name]
            apps = list(self.provider.__dict__.setdefault("planned_apps", {}).values())
            try:
                res = client.call("ValidateService", plans.ValidateServiceRequest(service=spec, planned=others, planned_apps=apps),
                                  action=f"checking service {values['name']!r}", attributes=SPEC_FIELDS)
                for note in res.notes:  # e.g. the cloud VMs it would rent, and their cost
                    diags.add_warning(f"Service {values['name']!r} would rent cloud VMs", note)
            except ApiError as e:
                e.report(diags)
        return planned

    def _apply(self, diags: Diagnostics, planned: State, method: str, op: str) -> Optional[m.Service]:
        client = client_of(self.provider, diags)
        if client is None:
            return None
        name = planned["name"]
        try:
            client.call(method, to_spec(planned), action=f"{op[:-1]}ing service {name!r}", attributes=SPEC_FIELDS)
            svc, why = wait_ready(client, name, _timeout(planned, op))
        except ApiError as e:
            if e.code == grpc.StatusCode.ALREADY_EXISTS:
                name_taken(diags, "service", name, "another spec")
            else:
                e.report(diags)
            return None
        if why:
            diags.add_error(f"Service {name!r} did not become ready", why)
            if op == "create":  # nothing half-created: stop what did start
                self._delete(diags, name, _timeout(planned, "delete"), report=False)
            return None
        return svc

    def create(self, ctx: CreateContext, planned: State) -> Optional[State]:
        svc = self._apply(ctx.diagnostics, planned, "CreateService", "create")
        return None if svc is None else _state(svc, planned)

    def update(self, ctx: UpdateContext, current: State, planned: State) -> Optional[State]:
        svc = self._apply(ctx.diagnostics, planned, "UpdateService", "update")
        return current if svc is None else _state(svc, planned)

    def read(self, ctx: ReadContext, current: State) -> Optional[State]:
        return read_by_name(self.provider, ctx.diagnostics, current, "GetService", m.GetServiceRequest, "service", _state)

    def _delete(self, diags: Diagnostics, name: str, timeout_s: float, report: bool = True) -> bool:
        return delete_and_wait(self.provider, diags, delete=("DeleteService", m.DeleteServiceRequest(name=name)),
                               get=("GetService", m.GetServiceRequest(name=name)), what="service", name=name,
                               timeout_s=timeout_s, report=report, poll_s=POLL_S,
                               still=(f"Service {name!r} still running",
                                      f"nodes did not stop it within {timeout_s:.0f}s; run terraform destroy again"))

    def delete(self, ctx: DeleteContext, current: State):
        name = current.get("name") or current.get("id")
        return None if self._delete(ctx.diagnostics, name, _timeout(current, "delete")) else current

    def import_(self, ctx: ImportContext, id: str) -> Optional[State]:
        svc = get_for_import(self.provider, ctx.diagnostics, id, "GetService", m.GetServiceRequest, "service")
        return None if svc is None else _state(svc, None)
