"""Resource `stratum_app`: a component of an analytics pipeline that is not a model (an MQTT broker,
a stream processor, a batch or periodic job), run by the nodes' exec driver.

`artifact` (a file or a directory, relative to Terraform's working directory) is hashed at plan
time (a directory as a deterministic tar, provider/artifact.py), so an edited file plans an
in-place update; apply uploads it by digest (GetBlob, then UploadBlob when missing). Plan asks
the control plane (ValidateApp) with the apps and services planned before it in this provider
process: a bad cron, an unknown time zone, a missing connects_to target or a cycle, a Vault key
that is not there, a binary or a fixed port no node offers all fail `terraform plan` on their
attribute.

Create and update record the desired state and wait (up to `timeouts`, default 10m) until the
app is ready: a service app when every instance runs (healthy, with a health check), a batch app
when the run of its current spec succeeded, a periodic app when every instance is placed and
idle or running. A failed batch run fails the apply with the run's log tail; a create that fails
deletes the app again (nothing half-created). Delete waits until no node runs it.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Optional

import grpc
from tf.iface import CreateContext, DeleteContext, ImportContext, PlanContext, ReadContext, Resource, State, UpdateContext
from tf.schema import Attribute, Schema
from tf.types import Bool, List, Map, String, Unknown
from tf.utils import Diagnostics

from provider import artifact as art
from provider.client import ApiError, Client
from provider.common import (as_configured, check_timeouts, client_of, delete_and_wait, get_for_import, name_taken,
                             read_by_name, rfc3339, wholly_known)
from provider.nested import NestedAttribute, Nesting, Number
from provider.resource_dataset import UPLOAD_BYTES_PER_S, UPLOAD_MIN_TIMEOUT_S, upload_messages
from provider.resource_service import PREFERENCE_ATTRIBUTES, REQUIREMENT_ATTRIBUTES, preferences_of, requirements_of
from stratum.durations import format_duration, parse_duration
from stratum.v1 import apps_pb2 as a, datasets_pb2, plans_pb2 as plans

log = logging.getLogger("stratum.provider.app")

SPEC_FIELDS = ("name", "kind", "artifact", "command", "args", "env", "secret_env", "ports", "health", "restart",
               "schedule", "requirements", "placement", "connects_to", "outputs", "replicas", "kill_timeout")
# Field paths the server's violations may name: the attributes, and AppSpec.count (see _on_attributes).
SERVER_FIELDS = (*SPEC_FIELDS, "count")
COMPUTED = ("state", "spec_version", "endpoints", "instances", "last_run", "next_run_at")
# Attribute paths of the durations, and where they go in the spec.
DURATIONS = (("health", "interval"), ("health", "timeout"), ("health", "grace"), ("restart", "interval"),
             ("restart", "delay"), (None, "kill_timeout"))
DEFAULT_TIMEOUT = "10m"
POLL_S = 0.5


def _seconds(text: Any) -> float:
    try:
        return parse_duration(text) if isinstance(text, str) and text else 0.0
    except ValueError:
        return 0.0  # check_durations reports it at plan, with the parser's message


def check_durations(diags: Diagnostics, planned: State) -> None:
    for block, attr in DURATIONS:
        value = (planned.get(block) or {}).get(attr) if block else planned.get(attr)
        if isinstance(value, str):
            try:
                parse_duration(value)
            except ValueError as e:
                label = f"{block}.{attr}" if block else attr
                diags.add_error(f"Invalid {label}", str(e), path=[block, attr] if block else [attr])


def to_spec(values: State, artifact: Optional[art.LocalArtifact] = None) -> a.AppSpec:
    h, r, s, o = (values.get(k) or {} for k in ("health", "restart", "schedule", "outputs"))
    spec = a.AppSpec(
        name=values["name"], kind=values.get("kind") or "", command=values.get("command") or "",
        args=list(values.get("args") or []), env=dict(values.get("env") or {}),
        secret_env=dict(values.get("secret_env") or {}),
        ports={k: int(v) for k, v in (values.get("ports") or {}).items()},
        health=a.HealthCheck(http=h.get("http") or "", port=h.get("port") or "", tcp=h.get("tcp") or "",
                             exec=list(h.get("exec") or []), interval_s=_seconds(h.get("interval")),
                             timeout_s=_seconds(h.get("timeout")), grace_s=_seconds(h.get("grace")),
                             failures=int(h.get("failures") or 0)),
        restart=a.RestartPolicy(attempts=int(r.get("attempts") or 0), interval_s=_seconds(r.get("interval")),
                                delay_s=_seconds(r.get("delay")), mode=r.get("mode") or ""),
        schedule=a.Schedule(cron=s.get("cron") or "", time_zone=s.get("time_zone") or "",
                            prohibit_overlap=bool(s.get("prohibit_overlap"))),
        requirements=requirements_of(values.get("requirements")), placement=preferences_of(values.get("placement")),
        connects_to=list(values.get("connects_to") or []),
        outputs=a.AppOutputs(dataset=o.get("dataset") or "", mode=o.get("mode") or ""),
        count=int(values.get("replicas") or 0), kill_timeout_s=_seconds(values.get("kill_timeout")))
    if artifact is not None:
        spec.artifact.CopyFrom(a.Artifact(sha256=artifact.sha256, size=artifact.size, name=artifact.name,
                                          directory=artifact.directory))
    return spec


# ---------------------------------------------------------------- state


def _zero(v: Any) -> Any:
    return type(v)()


def _duration(seconds: float, prior: Any) -> Optional[str]:
    """A duration in the form the configuration wrote it ("60s" stays "60s", not "1m")."""
    if isinstance(prior, str):
        try:
            if parse_duration(prior) == seconds:
                return prior
        except ValueError:
            pass
    if not seconds:
        return None
    text = format_duration(seconds)  # exact to the millisecond; finer (from a gRPC client) as ms
    return text if parse_duration(text) == seconds else f"{seconds * 1000:g}ms"


def _object(prior: Any, **values: Any) -> Optional[dict]:
    """A nested object from the server's values (zero: unset; None: already null) in the form the
    configuration wrote it: null when nothing is set and the configuration wrote no object."""
    p = prior if isinstance(prior, dict) else {}
    out = {k: None if v is None else as_configured(v, p.get(k), _zero(v)) for k, v in values.items()}
    if not isinstance(prior, dict) and all(v is None for v in out.values()):
        return None
    return out


def _args(spec: a.AppSpec, prior: State) -> State:
    """The arguments from the server's spec, as the configuration (prior state or plan) wrote them;
    on import (no prior) unset ones are null."""
    h, r, s, o, pl = spec.health, spec.restart, spec.schedule, spec.outputs, spec.placement
    ph, pr = prior.get("health") or {}, prior.get("restart") or {}
    conf = {k: as_configured(v, prior.get(k), _zero(v)) for k, v in (
        ("command", spec.command), ("args", list(spec.args)), ("env", dict(spec.env)),
        ("secret_env", dict(spec.secret_env)), ("ports", dict(spec.ports)), ("connects_to", list(spec.connects_to)),
        ("replicas", spec.count))}
    reqs = _requirements(spec.requirements, prior.get("requirements"))
    return {
        "name": spec.name, "kind": spec.kind, **conf,
        "artifact": _artifact_path(spec.artifact, prior),
        "health": _object(prior.get("health"), http=h.http, port=h.port, tcp=h.tcp, exec=list(h.exec),
                          interval=_duration(h.interval_s, ph.get("interval")),
                          timeout=_duration(h.timeout_s, ph.get("timeout")),
                          grace=_duration(h.grace_s, ph.get("grace")), failures=h.failures),
        "restart": _object(prior.get("restart"), attempts=r.attempts, interval=_duration(r.interval_s, pr.get("interval")),
                           delay=_duration(r.delay_s, pr.get("delay")), mode=r.mode),
        "schedule": _object(prior.get("schedule"), cron=s.cron, time_zone=s.time_zone, prohibit_overlap=s.prohibit_overlap),
        "requirements": reqs,
        "placement": _object(prior.get("placement"), pack=pl.pack, prefer_tiers=list(pl.prefer_tiers),
                             affinity=dict(pl.affinity), anti_affinity=list(pl.anti_affinity)),
        "outputs": _object(prior.get("outputs"), dataset=o.dataset, mode=o.mode),
        "kill_timeout": _duration(spec.kill_timeout_s, prior.get("kill_timeout")),
    }


def _requirements(q, prior: Any) -> Optional[dict]:
    return _object(prior, cpu=q.cpu, memory_mb=q.memory_mb, tiers=list(q.tiers), labels=dict(q.labels), arch=q.arch,
                   gpu=q.gpu, gpu_model=q.gpu_model, gpu_memory_mb=q.gpu_memory_mb, zone=q.zone, data=q.data,
                   binaries=list(q.binaries))


def _artifact_path(artifact: a.Artifact, prior: State) -> Optional[str]:
    """The path as configured (artifact_sha256 says which bytes the control plane holds, so a
    different digest plans an upload); on import only the base name is known."""
    if not artifact.sha256:
        return None
    return prior.get("artifact") or artifact.name


def _state(app: a.App, prior: Optional[State]) -> State:
    prior = dict(prior or {})
    spec, run = app.spec, app.last_run
    out = _args(spec, prior)
    out.update(
        id=spec.name, artifact_sha256=spec.artifact.sha256 or None, timeouts=prior.get("timeouts"),
        state=app.state, spec_version=app.spec_version,
        endpoints={port: list(e.addresses) for port, e in sorted(app.endpoints.items())},
        instances=[{"index": i.index, "node_name": i.node_name or None, "state": i.state, "restarts": i.restarts}
                   for i in app.instances],
        last_run={"number": run.number, "state": run.state, "exit_code": run.exit_code if run.HasField("exit_code") else None,
                  "dataset_version": run.dataset_version or None, "message": run.message or None} if run.number else None,
        next_run_at=rfc3339(app.next_run_at) if app.next_run_at.seconds else None)
    return out


def _timeout(values: State, op: str) -> float:
    return parse_duration((values.get("timeouts") or {}).get(op) or DEFAULT_TIMEOUT)


def wait_ready(client: Client, name: str, timeout_s: float) -> tuple[a.App, str]:
    """Poll GetApp until the app is ready: (app, "") or (last seen, why not)."""
    deadline = time.monotonic() + timeout_s
    said = None
    while True:
        app = client.call("GetApp", a.GetAppRequest(name=name), action=f"waiting for app {name!r}")
        if app.state == "ready":
            return app, ""
        if app.state == "failed":
            return app, app.message or "a node could not run it"
        if app.message != said:
            said = app.message
            log.info("waiting for app", extra={"fields": {"app": name, "state": app.state, "message": app.message}})
        if time.monotonic() >= deadline:
            return app, f"not ready after {timeout_s:.0f}s: {app.message or 'instances still starting'}"
        time.sleep(POLL_S)


def _on_attributes(e: ApiError) -> ApiError:
    """The server's field paths on this resource's attribute names: AppSpec.count is `replicas` here.
    A connects_to target planned after this app is not known yet when it is checked: say how to
    order them."""
    for d in e.diagnostics:
        if d.path and d.path[0] == "count":
            d.path = ["replicas", *d.path[1:]]
            d.summary = d.summary.replace("Invalid count", "Invalid replicas")
        if d.path and d.path[0] == "connects_to" and "is planned or exists" in (d.detail or ""):
            d.detail += (". If it is in this configuration, refer to it (e.g. stratum_app.<name>.id) so that "
                         "Terraform plans it first")
    return e


HEALTH_ATTRIBUTES = [
    Attribute("http", String(), optional=True, description="HTTP path that must answer 2xx, e.g. `/healthz`."),
    Attribute("port", String(), optional=True, description="Named port of the `http` check (default: the first by name)."),
    Attribute("tcp", String(), optional=True, description="Named port that must accept a TCP connection."),
    Attribute("exec", List(String()), optional=True, description="Command run in the working directory; exit 0 is healthy."),
    Attribute("interval", String(), optional=True, description="Time between checks (default `5s`)."),
    Attribute("timeout", String(), optional=True, description="Time a check may take (default `2s`)."),
    Attribute("grace", String(), optional=True, description="Time after a start before failed checks count (default `30s`)."),
    Attribute("failures", Number(), optional=True, description="Failed checks in a row that restart the instance (default 3)."),
]
RESTART_ATTRIBUTES = [
    Attribute("attempts", Number(), optional=True, description="Restarts allowed within `interval` (default 3; -1 for none)."),
    Attribute("interval", String(), optional=True, description="Window the attempts are counted in (default `5m`)."),
    Attribute("delay", String(), optional=True, description="Wait before a restart (default `1s`)."),
    Attribute("mode", String(), optional=True, description="When the attempts are used up: `delay` (default) or `fail`."),
]
SCHEDULE_ATTRIBUTES = [
    Attribute("cron", String(), optional=True, description="Five-field cron expression, e.g. `*/15 * * * *`."),
    Attribute("time_zone", String(), optional=True, description="IANA time zone of the expression (default `UTC`)."),
    Attribute("prohibit_overlap", Bool(), optional=True, description="Skip a run while the previous one still runs."),
]
OUTPUT_ATTRIBUTES = [
    Attribute("dataset", String(), optional=True, description="Dataset a successful run's `$STRATUM_OUTPUT` file becomes the next version of."),
    Attribute("mode", String(), optional=True, description="`replace` (default) or `append`."),
]


class AppResource(Resource):
    def __init__(self, provider):
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return "app"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=0,
            description="An app: a service, batch or periodic process of an analytics pipeline, run on nodes that meet its requirements.",
            attributes=[
                Attribute("id", String(), computed=True, description="Same as `name`."),
                Attribute("name", String(), required=True, requires_replace=True, description="Unique name. Changing it replaces the app."),
                Attribute("kind", String(), required=True, requires_replace=True, description="`service`, `batch` or `periodic`."),
                Attribute("artifact", String(), optional=True, description="A file or directory to run, relative to the Terraform working directory; uploaded by digest."),
                Attribute("command", String(), optional=True, description="Program to run: a path in the artifact, or a binary on the node's PATH."),
                Attribute("args", List(String()), optional=True, description="Its arguments; `${NAME}` is the app's variable NAME."),
                Attribute("env", Map(String()), optional=True, description="Environment variables."),
                Attribute("secret_env", Map(String()), optional=True, sensitive=True,
                          description="Environment variables read from Vault: NAME -> `<kv v2 path>#<key>`."),
                Attribute("ports", Map(Number()), optional=True, description="Named ports: a fixed port, or 0 for any free one."),
                NestedAttribute("health", HEALTH_ATTRIBUTES, Nesting.SINGLE, optional=True,
                                description="How a node decides a service instance is healthy."),
                NestedAttribute("restart", RESTART_ATTRIBUTES, Nesting.SINGLE, optional=True,
                                description="How a failed instance is restarted on its node."),
                NestedAttribute("schedule", SCHEDULE_ATTRIBUTES, Nesting.SINGLE, optional=True, description="When a periodic app runs."),
                NestedAttribute("requirements", REQUIREMENT_ATTRIBUTES, Nesting.SINGLE, optional=True,
                                description="What a node must offer each instance; checked at plan time."),
                NestedAttribute("placement", PREFERENCE_ATTRIBUTES, Nesting.SINGLE, optional=True,
                                description="Spread and placement preferences."),
                Attribute("connects_to", List(String()), optional=True, description="Apps and services it talks to, by name."),
                NestedAttribute("outputs", OUTPUT_ATTRIBUTES, Nesting.SINGLE, optional=True,
                                description="Where a successful run's output goes."),
                # AppSpec.count: `count` is Terraform's meta-argument, so no resource attribute can have that name.
                Attribute("replicas", Number(), optional=True, description="Instances of a service app (default 1)."),
                Attribute("kill_timeout", String(), optional=True, description="Time between SIGTERM and SIGKILL (default `10s`)."),
                NestedAttribute("timeouts", [
                    Attribute("create", String(), optional=True, description="Default `10m`."),
                    Attribute("update", String(), optional=True, description="Default `10m`."),
                    Attribute("delete", String(), optional=True, description="Default `10m`."),
                ], Nesting.SINGLE, optional=True, description="How long apply and destroy wait for the nodes."),
                Attribute("artifact_sha256", String(), computed=True, description="sha256 of the artifact as uploaded, computed at plan time."),
                Attribute("state", String(), computed=True, description="`ready`, `pending`, `failed` or `deleting`."),
                Attribute("spec_version", Number(), computed=True, description="Increases with every change of the app."),
                Attribute("endpoints", Map(List(String())), computed=True, description="Port name -> `host:port` of every instance."),
                NestedAttribute("instances", [
                    Attribute("index", Number(), computed=True, description="Instance index."),
                    Attribute("node_name", String(), computed=True, description="Node it runs on."),
                    Attribute("state", String(), computed=True, description="Its state."),
                    Attribute("restarts", Number(), computed=True, description="Restarts on that node."),
                ], Nesting.LIST, computed=True, description="Where the instances run."),
                NestedAttribute("last_run", [
                    Attribute("number", Number(), computed=True, description="Run number."),
                    Attribute("state", String(), computed=True, description="Its state."),
                    Attribute("exit_code", Number(), computed=True, description="Exit code."),
                    Attribute("dataset_version", Number(), computed=True, description="Dataset version its output became."),
                    Attribute("message", String(), computed=True, description="Why it ended as it did."),
                ], Nesting.SINGLE, computed=True, description="The latest run (batch and periodic apps)."),
                Attribute("next_run_at", String(), computed=True, description="Next scheduled run (periodic apps), RFC 3339."),
            ],
        )

    # ---- plan ----

    def plan(self, ctx: PlanContext, current: Optional[State], planned: State) -> Optional[State]:
        diags = ctx.diagnostics
        if current is None:
            planned["id"] = planned["name"]  # known at plan time: other apps' connects_to can name it
        local = self._plan_artifact(diags, planned)
        if current is not None:
            if not ctx.changed_fields & set(SPEC_FIELDS) and planned.get("artifact_sha256") == current.get("artifact_sha256"):
                return planned  # nothing the control plane sees changes (timeouts at most)
            for k in COMPUTED:
                planned[k] = Unknown  # instances restart with the new spec
        check_timeouts(diags, planned, ("create", "update", "delete"))
        check_durations(diags, planned)
        values = {k: planned.get(k) for k in SPEC_FIELDS}
        client = getattr(self.provider, "client", None)
        if client is None or not wholly_known(values):
            return planned  # checked again when known
        if values.get("artifact") and local is None:  # its own problem is reported already: let the server judge the rest
            local = art.LocalArtifact("", os.path.basename(os.path.normpath(values["artifact"])) or "artifact", False, "0" * 64, 0)
        # As for services: register first, so the last one planned is checked with all the others.
        spec = to_spec(values, local)
        in_run = self.provider.__dict__.setdefault("planned_apps", {})
        in_run[spec.name] = spec
        others = [s for name, s in list(in_run.items()) if name != spec.name]
        services = list(self.provider.__dict__.setdefault("planned_services", {}).values())
        try:
            res = client.call("ValidateApp", plans.ValidateAppRequest(app=spec, planned=others, planned_services=services),
                              action=f"checking app {spec.name!r}", attributes=SERVER_FIELDS)
            for note in res.notes:
                diags.add_warning(f"App {spec.name!r} would rent cloud VMs", note)
        except ApiError as e:
            _on_attributes(e).report(diags)
        return planned

    def _plan_artifact(self, diags: Diagnostics, planned: State) -> Optional[art.LocalArtifact]:
        path = planned.get("artifact")
        if path is Unknown:
            planned["artifact_sha256"] = Unknown
            return None
        if path is None:
            planned["artifact_sha256"] = None
            return None
        try:
            local = art.inspect(path)
        except art.ArtifactError as e:
            e.report(diags)
            return None
        planned["artifact_sha256"] = local.sha256
        return local

    # ---- apply ----

    def _upload(self, diags: Diagnostics, client: Client, planned: State) -> tuple[bool, Optional[art.LocalArtifact]]:
        """Make sure the control plane holds the artifact's bytes: (ok, the artifact or None)."""
        if not planned.get("artifact"):
            return True, None
        try:
            local = art.inspect(planned["artifact"])
            with art.blob_file(local) as (path, sha, size):
                if sha != planned.get("artifact_sha256"):
                    diags.add_error("Artifact changed since plan",
                                    f"{local.path} changed after `terraform plan` (sha256 {str(planned.get('artifact_sha256'))[:12]}… "
                                    f"planned, {sha[:12]}… now). Run terraform plan (or apply) again.", path=["artifact"])
                    return False, None
                try:
                    client.call("GetBlob", datasets_pb2.GetBlobRequest(sha256=sha), action=f"checking whether {local.path} is uploaded")
                    return True, local  # stored already: nothing to send
                except ApiError as e:
                    if e.code != grpc.StatusCode.NOT_FOUND:
                        raise
                client.call("UploadBlob", upload_messages(path, sha, size), action=f"uploading {local.path}",
                            timeout=max(UPLOAD_MIN_TIMEOUT_S, size / UPLOAD_BYTES_PER_S))
                return True, local
        except art.ArtifactError as e:
            e.report(diags)
        except ApiError as e:
            for d in e.diagnostics:
                d.path = ["artifact"]
            e.report(diags)
        return False, None

    def _apply(self, diags: Diagnostics, planned: State, method: str, op: str) -> Optional[a.App]:
        client = client_of(self.provider, diags)
        if client is None:
            return None
        ok, local = self._upload(diags, client, planned)
        if not ok:
            return None
        name = planned["name"]
        try:
            client.call(method, to_spec(planned, local), action=f"{op[:-1]}ing app {name!r}", attributes=SERVER_FIELDS)
        except ApiError as e:
            if e.code == grpc.StatusCode.ALREADY_EXISTS:
                name_taken(diags, "app", name, "another spec")
            else:
                _on_attributes(e).report(diags)
            return None  # nothing recorded
        try:
            app, why = wait_ready(client, name, _timeout(planned, op))
        except ApiError as e:
            app, why = None, "; ".join(d.detail or d.summary for d in e.diagnostics)
        if why:
            diags.add_error(f"App {name!r} did not become ready", why)
            if op == "create":  # nothing half-created: stop whatever did start
                self._delete(diags, name, _timeout(planned, "delete"), report=False)
            return None
        return app

    def create(self, ctx: CreateContext, planned: State) -> Optional[State]:
        app = self._apply(ctx.diagnostics, planned, "CreateApp", "create")
        return None if app is None else _state(app, planned)

    def update(self, ctx: UpdateContext, current: State, planned: State) -> Optional[State]:
        app = self._apply(ctx.diagnostics, planned, "UpdateApp", "update")
        return current if app is None else _state(app, planned)

    def read(self, ctx: ReadContext, current: State) -> Optional[State]:
        return read_by_name(self.provider, ctx.diagnostics, current, "GetApp", a.GetAppRequest, "app", _state)

    def _delete(self, diags: Diagnostics, name: str, timeout_s: float, report: bool = True) -> bool:
        return delete_and_wait(self.provider, diags, delete=("DeleteApp", a.DeleteAppRequest(name=name)),
                               get=("GetApp", a.GetAppRequest(name=name)), what="app", name=name,
                               timeout_s=timeout_s, report=report, poll_s=POLL_S,
                               still=(f"App {name!r} still running",
                                      f"nodes did not stop it within {timeout_s:.0f}s; run terraform destroy again"))

    def delete(self, ctx: DeleteContext, current: State):
        name = current.get("name") or current.get("id")
        return None if self._delete(ctx.diagnostics, name, _timeout(current, "delete")) else current

    def import_(self, ctx: ImportContext, id: str) -> Optional[State]:
        app = get_for_import(self.provider, ctx.diagnostics, id, "GetApp", a.GetAppRequest, "app")
        return None if app is None else _state(app, None)
