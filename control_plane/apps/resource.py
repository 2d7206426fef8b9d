"""The `stratum_app` resource: desired state (store table `apps`), checks, runs, and the app Kind of
the reconciler (control_plane/reconcile/).

An app document holds the spec, a spec version (bumped by every change: instances restart with
the new spec), its placement ({node id: instances}), which node runs which instance index, and
the endpoints each instance last reported.
Batch and periodic apps get run records (apps/runs.py) written before a node is told to run them:
a batch app one per spec version, a periodic app one per scheduled time (apps/schedule.py), both
on store keys that make a repeated step a no-op. Nodes report instances and runs on their session;
a run that succeeded with an output becomes the next version of a dataset.

Wiring: an app or service that `connects_to` others gets STRATUM_<NAME>_URL for each, the
endpoint nearest to the node it runs on (apps/wiring.py); an instance is held back until all its
targets have an endpoint, and restarted (its environment changed) when one moves. A target's
endpoint is what its instance reports where it is placed now, else what it last reported, so a
wired instance is not stopped while its target restarts or moves, nor by a control-plane restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

from google.protobuf import json_format

from control_plane.analysis import ServiceNeeds, analyse, check_plan as check_whole_plan
from control_plane.apps import instances as inst, runs as run_records, schedule, wiring
from control_plane.apps.logs import LogBroker
from control_plane.apps.spec import RUNS, env_key, instances, kill_timeout, validate_spec
from control_plane.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, StratumError
from control_plane.provision.pools import SLOT_PREFIX
from control_plane.reconcile import Reconciler, Workload, key_of, node_view
from control_plane.services import demand_of, preferences_of
from control_plane.store import Conflict, Store
from stratum.logs import event
from stratum.timestamps import set_timestamp
from stratum.validation import shown
from stratum.v1 import apps_pb2 as a, control_plane_pb2 as cp, models_pb2 as m, node_agent_pb2 as na

log = logging.getLogger("stratum.apps")

SCHEMES = {"http", "https", "mqtt", "mqtts", "ws", "wss", "grpc", "redis", "postgresql", "amqp", "tcp"}
SECRET_TTL_S = 60.0  # secrets are read again this often (a rotated password reaches the nodes)
LOST_AFTER_S = 5.0  # a run whose node has been down this long is lost


def spec_json(spec: a.AppSpec) -> dict:
    return json_format.MessageToDict(spec, preserving_proto_field_name=True)


def spec_of(doc: dict) -> a.AppSpec:
    return json_format.ParseDict(doc["spec"], a.AppSpec())


def fixed_ports(spec: a.AppSpec) -> tuple:
    return tuple(sorted(p for p in spec.ports.values() if p))


def url(port_name: str, address: str) -> str:
    scheme = port_name if port_name in SCHEMES else "tcp"
    return f"{scheme}://{address}"


class Apps:
    kind, table = "app", "apps"

    def __init__(self, store: Store, nodes, reconciler: Reconciler, services, datasets, *, vault=None,
                 on_new_data=None):
        self.store, self.nodes, self.reconciler = store, nodes, reconciler
        self.services, self.datasets = services, datasets
        self.vault = vault  # () -> control_plane.provision.vault.Vault (raises VaultError when there is none)
        self.on_new_data = on_new_data or (lambda dataset, version: None)  # a dataset got a version from a run
        self.reports: dict[str, dict[tuple[str, int], na.AppStatus]] = {}  # node id -> (app, instance) -> status
        self.logs = LogBroker(reconciler.sessions)
        self._secrets: dict[str, tuple[float, dict]] = {}  # vault path -> (read at, data)
        self._secret_lock = threading.Lock()
        self.holds: dict[tuple[str, int], str] = {}  # (app, instance) -> why it is not started yet
        reconciler.register(self)
        services.connections = self.connections

    # -- the reconciler's Kind ----------------------------------------------------------------
    def needs(self, spec: a.AppSpec) -> ServiceNeeds:
        r = spec.requirements
        return ServiceNeeds(name=spec.name, demand=demand_of(r, int(r.memory_mb), fixed_ports(spec)),
                            replicas=instances(spec), memory_explicit=True, kind="app",
                            port_names=tuple((p, n) for n, p in spec.ports.items() if p))

    def workload(self, doc: dict) -> Workload:
        spec = spec_of(doc)
        return Workload(self.kind, doc["name"], self.needs(spec).demand, instances(spec), preferences_of(spec),
                        dict(doc["placement"]), deleting=bool(doc.get("deleting")))

    def placed(self, doc: dict, placement: dict[str, int]) -> None:
        doc["placement"] = placement
        old = {int(i): n for i, n in (doc.get("instances") or {}).items()}
        doc["instances"] = {str(i): n for i, n in inst.assign(old, placement, instances(spec_of(doc))).items()}
        if doc.get("endpoints"):  # those of instances no longer there
            doc["endpoints"] = {i: e for i, e in doc["endpoints"].items() if i in doc["instances"]}

    def reports_on(self, node_id: str) -> set[str]:
        return {app for app, _ in self.reports.get(node_id, {})}

    def forget(self, name: str) -> None:
        self.store.delete_runs(name)
        for hold in [h for h in self.holds if h[0] == name]:
            del self.holds[hold]

    # -- checks -------------------------------------------------------------------------------
    def _doc(self, name: str) -> dict:
        doc = self.store.get_doc(self.table, name)
        if doc is None:
            raise NotFound(f"app {shown(name)} not found")
        return doc

    def _targets(self) -> dict[str, list[str]]:
        """Every stored app's and service's connects_to (name -> names), for cycle checks."""
        edges: dict[str, list[str]] = {}
        for d in self.store.list_docs(self.table) + self.services.docs():
            if not d.get("deleting"):
                edges[d["name"]] = list(d["spec"].get("connects_to") or [])
        return edges

    def check(self, spec: a.AppSpec, *, planned_apps=(), planned_services=(), at_plan: bool = False) -> None:
        """Every problem with a spec that the store and Vault can tell, as violations."""
        problems = validate_spec(spec)
        known_apps = {d["name"] for d in self.store.list_docs(self.table) if not d.get("deleting")}
        known_services = {d["name"] for d in self.services.docs() if not d.get("deleting")}
        known_apps |= {p.name for p in planned_apps}
        known_services |= {p.name for p in planned_services}
        for i, target in enumerate(spec.connects_to):
            if target != spec.name and target not in known_apps | known_services:
                problems.append((f"connects_to[{i}]", f"no app or service named {shown(target)}"
                                                      + (" is planned or exists" if at_plan else " exists")))
            elif target in known_apps and target in known_services:
                problems.append((f"connects_to[{i}]", f"{shown(target)} names both an app and a service: rename one"))
        edges = self._targets()
        for p in list(planned_apps) + list(planned_services):
            edges[p.name] = list(p.connects_to)
        edges[spec.name] = list(spec.connects_to)
        loop = wiring.cycle({n: [t for t in ts if t in edges] for n, ts in edges.items()})
        if loop and spec.name in loop:
            problems.append(("connects_to", "connects_to makes a cycle: " + " -> ".join(loop)
                             + " (each waits for the other's endpoint)"))
        if spec.outputs.dataset and not at_plan and self.store.get_dataset(spec.outputs.dataset) is None:
            problems.append(("outputs.dataset", f"dataset {shown(spec.outputs.dataset)} not found; create it first "
                                                "(stratum_dataset)"))
        problems += self._check_secrets(spec)
        if problems:
            raise InvalidArgument(problems)

    def _check_secrets(self, spec: a.AppSpec) -> list[tuple[str, str]]:
        problems = []
        for name, ref in sorted(spec.secret_env.items()):
            path, _, key = ref.partition("#")
            if not path or not key:
                continue  # validate_spec said so
            try:
                data = self._read_secret(path, fresh=True)
            except StratumError as e:
                problems.append((f'secret_env["{name}"]', str(e)))
                continue
            if key not in data:
                problems.append((f'secret_env["{name}"]', f"the Vault secret at {shown(path)} has no key {shown(key)}"))
        return problems

    def _read_secret(self, path: str, fresh: bool = False) -> dict:
        """A KV v2 secret's data, cached for SECRET_TTL_S; FailedPrecondition naming the path (never a
        value) when Vault cannot give it."""
        from control_plane.provision.vault import VaultError

        with self._secret_lock:
            hit = self._secrets.get(path)
            if hit and not fresh and time.monotonic() - hit[0] < SECRET_TTL_S:
                return hit[1]
        try:
            if self.vault is None:
                raise VaultError("no Vault")
            data = self.vault().read(path)
        except VaultError as e:
            if hit and not fresh:
                return hit[1]  # Vault briefly away: keep what the nodes run with
            why = str(e) if e.path else (f"{e}: secret_env needs Vault: set VAULT_ADDR and VAULT_TOKEN (or "
                                         "VAULT_ROLE_ID and VAULT_SECRET_ID) for the control plane")
            raise FailedPrecondition(f"cannot read {shown(path)} from Vault: {why}") from None
        with self._secret_lock:
            self._secrets[path] = (time.monotonic(), data)
        return data

    def check_plan(self, spec: a.AppSpec, planned: list[a.AppSpec], planned_services: list[m.ServiceSpec]) -> list[str]:
        """Plan time: the spec, its targets and secrets, and room on the nodes for it and everything
        planned alongside (services and apps together)."""
        self.check(spec, planned_apps=planned, planned_services=planned_services, at_plan=True)
        snap = self.reconciler.snapshot(slots=False)
        others = [p for p in planned if p.name != spec.name]
        used = snap.used({key_of(self.kind, spec.name), *(key_of(self.kind, p.name) for p in others),
                          *(key_of("service", s.name) for s in planned_services)})
        needs = self.needs(spec)
        found = analyse(needs, snap.nodes, used, snap.pool_room)
        if not found:
            together = check_whole_plan([needs, *(self.needs(p) for p in others),
                                         *(self.services._needs(s) for s in planned_services)],
                                        snap.nodes, used, snap.pool_room)
            found = [v for v in together if v.service == spec.name] or together
        if found:
            raise InvalidArgument([(v.path, v.message if v.service in ("", spec.name) else f"{v.service}: {v.message}")
                                   for v in found])
        return []

    def _place(self, spec: a.AppSpec, keep: dict[str, int] | None) -> dict[str, int]:
        needs = self.needs(spec)
        w = Workload(self.kind, spec.name, needs.demand, needs.replicas, preferences_of(spec), dict(keep or {}))
        placement, reasons = self.reconciler.place(w)
        if reasons:
            raise FailedPrecondition(f"no room for {needs.replicas} instance(s) of app {spec.name!r}: "
                                     + "; ".join(r for r in reasons if r))
        return placement

    # -- desired state ------------------------------------------------------------------------
    def create(self, spec: a.AppSpec) -> a.App:
        existing = self.store.get_doc(self.table, spec.name)
        if existing is not None and not existing.get("deleting"):
            if existing["spec"] == spec_json(spec):
                return self.get(spec.name)
            raise AlreadyExists(f"app {spec.name!r} already exists with a different spec")
        if existing is not None:
            raise FailedPrecondition(f"app {spec.name!r} is still being deleted; try again in a few seconds")
        self.check(spec)
        now = time.time()
        with self.reconciler.lock:
            doc = {"name": spec.name, "spec": spec_json(spec), "spec_version": 1, "placement": {}, "instances": {},
                   "deleting": False, "created_at": now, "scheduled_to": now}
            self.placed(doc, self._place(spec, None))
            if spec.kind == "batch":  # recorded before any node hears of the app
                self._record_run(doc, reason="created")
            self.store.put_doc(self.table, spec.name, doc)
        event(log, "app created", app=spec.name, kind=spec.kind, placement=doc["placement"])
        self.reconciler.changed()
        return self.get(spec.name)

    def update(self, spec: a.AppSpec) -> a.App:
        self.check(spec)
        with self.reconciler.lock:
            doc = self._doc(spec.name)
            if doc.get("deleting"):
                raise NotFound(f"app {spec.name!r} is being deleted")
            old = spec_of(doc)
            if old == spec:
                return self.get(spec.name)
            if old.kind != spec.kind:
                raise InvalidArgument([("kind", f"kind changes from {old.kind} to {spec.kind}: replace the app instead")])
            same_needs = (old.requirements, old.placement, old.ports, old.count) == (
                spec.requirements, spec.placement, spec.ports, spec.count)
            doc.update(spec=spec_json(spec), spec_version=doc["spec_version"] + 1)
            self.placed(doc, self._place(spec, doc["placement"] if same_needs else None))
            if spec.kind == "batch":
                self._record_run(doc, reason=f"spec version {doc['spec_version']}")
            if spec.kind == "periodic" and old.schedule != spec.schedule:
                doc["scheduled_to"] = time.time()  # a new schedule counts from now
            self.store.put_doc(self.table, spec.name, doc)
        event(log, "app updated", app=spec.name, spec_version=doc["spec_version"], placement=doc["placement"])
        self.reconciler.changed()
        return self.get(spec.name)

    def delete(self, name: str) -> None:
        with self.reconciler.lock:
            doc = self.store.get_doc(self.table, name)
            if doc is None or doc.get("deleting"):
                return
            doc["deleting"] = True
            self.store.put_doc(self.table, name, doc)
            for run in self.store.list_runs(name, 1000):
                if run["state"] in run_records.ACTIVE:
                    run.update(state="failed", message="the app was deleted", ended_at=time.time())
                    self.store.update_run(run)
        self.reconciler.mark_deleting(self.kind, name)
        event(log, "app deleting", app=name)
        self.reconciler.changed()

    def _record_run(self, doc: dict, *, reason: str, scheduled_for: float | None = None, state: str = "pending",
                    message: str = "") -> dict | None:
        """A run record, written before anything runs; None when this scheduled time has one already."""
        run = run_records.new_run(doc["name"], doc["spec_version"], (doc.get("instances") or {}).get("0", ""),
                                  reason=reason, state=state, scheduled_for=scheduled_for, message=message)
        for _ in range(3):
            try:
                recorded = self.store.insert_run(run)
                break
            except Conflict:  # another writer took the number at the same moment: number it again
                continue
        else:
            raise FailedPrecondition(f"could not record a run of app {doc['name']!r}; try again")
        if recorded is not None:
            event(log, "app run recorded", app=doc["name"], run=recorded["number"], state=state, reason=reason)
        return recorded

    def run_now(self, name: str) -> a.AppRun:
        doc = self._doc(name)
        spec = spec_of(doc)
        if doc.get("deleting"):
            raise NotFound(f"app {name!r} is being deleted")
        if spec.kind not in RUNS:
            raise FailedPrecondition(f"app {name!r} is a {spec.kind}: only batch and periodic apps have runs")
        with self.reconciler.lock:
            run = self._record_run(doc, reason="run now")
        self.reconciler.push()
        return run_records.to_proto(run, self._node_name(run["node_id"]))

    def list_runs(self, name: str, limit: int) -> a.ListAppRunsResponse:
        self._doc(name)
        if not 0 <= limit <= 1000:
            raise InvalidArgument([("limit", f"limit = {limit}: give 0 to 1000 (0 for 20)")])
        return a.ListAppRunsResponse(runs=[run_records.to_proto(r, self._node_name(r.get("node_id", "")))
                                           for r in self.store.list_runs(name, limit or 20)])

    # -- the scheduler and lost runs (once a tick, on the leader) ------------------------------
    def tick(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        changed = False
        docs = [d for d in self.store.list_docs(self.table) if not d.get("deleting")]
        for doc in docs:
            spec = spec_of(doc)
            if spec.kind == "periodic":
                changed |= self._schedule(doc, spec, now)
        changed |= self._retarget(docs, now)
        if changed:
            self.reconciler.push()

    def _schedule(self, doc: dict, spec: a.AppSpec, now: float) -> bool:
        times = schedule.due(spec.schedule.cron, spec.schedule.time_zone, float(doc.get("scheduled_to") or now), now)
        if not times:
            return False
        with self.reconciler.lock:
            active = any(r["state"] in run_records.ACTIVE for r in self.store.list_runs(doc["name"], 20))
            started = False
            for t, state, why in schedule.decide(times, running=active, prohibit_overlap=spec.schedule.prohibit_overlap):
                started |= self._record_run(doc, reason="schedule", scheduled_for=t, state=state, message=why) is not None \
                    and state == "pending"
            fresh = self.store.get_doc(self.table, doc["name"])
            if fresh is not None and not fresh.get("deleting"):
                fresh["scheduled_to"] = times[-1]
                self.store.put_doc(self.table, doc["name"], fresh)
        return started

    def _retarget(self, docs: list[dict], now: float) -> bool:
        """Runs whose node is gone: pending ones go to the app's node now; running ones are lost (a
        batch app records a new run in their place)."""
        by_name = {d["name"]: d for d in docs}
        changed = False
        for run in self.store.runs_in(run_records.ACTIVE):
            doc = by_name.get(run["app"])
            if doc is None:
                continue
            node_now = (doc.get("instances") or {}).get("0", "")
            if run["node_id"] == node_now and self._node_ready(run["node_id"], now):
                continue
            if run["state"] == "pending":
                run["node_id"] = node_now
                self.store.update_run(run)
                changed = True
            elif not self._node_ready(run["node_id"], now):
                run.update(state="lost", ended_at=now,
                           message=f"node {self._node_name(run['node_id'])} went away during the run")
                self.store.update_run(run)
                event(log, "app run lost", level=logging.WARNING, app=run["app"], run=run["number"])
                if spec_of(doc).kind == "batch" and run["spec_version"] == doc["spec_version"]:
                    with self.reconciler.lock:
                        self._record_run(doc, reason=f"run {run['number']} was lost")
                changed = True
        return changed

    def _node_ready(self, node_id: str, now: float | None = None, nodes=None) -> bool:
        """The node is ready (with `now`: or was heard from within LOST_AFTER_S, a blip not a loss)."""
        if not node_id or node_id.startswith(SLOT_PREFIX):
            return False
        try:
            n = (nodes or self.nodes).get(node_id)
        except NotFound:
            return False
        recent = now is not None and now - n.last_heartbeat.ToNanoseconds() / 1e9 < LOST_AFTER_S
        return n.state == "ready" or recent

    # -- what nodes are told ------------------------------------------------------------------
    def connections(self, key: str, targets: list[str], node_id: str, views: dict | None = None) -> dict[str, str] | None:
        """STRATUM_<NAME>_URL (and STRATUM_<NAME>_<PORT>_URL for apps) of each target, nearest to
        the node; None while some target has no endpoint yet."""
        if views is None:
            views = {v.id: v for v in (node_view(n) for n in self.nodes.list(cp.ListNodesRequest()))}
        here = views.get(node_id)
        env: dict[str, str] = {}
        for target in targets:
            app = self.store.get_doc(self.table, target)
            if app is not None and not app.get("deleting"):
                ports: dict[str, list] = {}
                for n, endpoints in self._target_endpoints(app):
                    if n in views:
                        for port, address in endpoints.items():
                            ports.setdefault(port, []).append((views[n], url(port, address)))
                if not ports:
                    return None
                for port in sorted(ports):
                    env[f"STRATUM_{env_key(target)}_{port.upper()}_URL"] = wiring.nearest(here, ports[port])
                env[f"STRATUM_{env_key(target)}_URL"] = env[f"STRATUM_{env_key(target)}_{min(ports).upper()}_URL"]
                continue
            found = [(views[n], u) for n, u in self.services.endpoints(target).items() if n in views]
            if not found:
                return None
            env[f"STRATUM_{env_key(target)}_URL"] = wiring.nearest(here, found)
        return env

    def _target_endpoints(self, doc: dict) -> list[tuple[str, dict[str, str]]]:
        """(node id, {port: address}) of each instance of a target app where it is placed now: what
        its node reports while it runs there, else what it last reported (kept in the document).
        So consumers are pointed where the target runs, never at a node it moved off, and a wired
        consumer keeps running as it is while the target restarts or moves, or while a restarted
        control plane has heard no report yet, instead of being stopped until the target answers."""
        out = []
        last = doc.get("endpoints") or {}
        for index, node_id in sorted((doc.get("instances") or {}).items(), key=lambda kv: int(kv[0])):
            st = self.reports.get(node_id, {}).get((doc["name"], int(index)))
            if st is not None and st.state in ("running", "healthy") and st.endpoints:
                out.append((node_id, dict(st.endpoints)))
            elif index in last:
                out.append((last[index]["node_id"], dict(last[index]["ports"])))
        return out

    def _remember_endpoints(self, node_id: str, report: na.ServiceReport) -> None:
        """Keep in each app's document the endpoints its instances placed on this node report (written
        only when they changed): they outlive a control-plane restart (_target_endpoints)."""
        seen = {(s.app, s.instance): dict(s.endpoints) for s in report.apps
                if s.state in ("running", "healthy") and s.endpoints}
        if not seen:
            return
        with self.reconciler.lock:
            for (name, index), endpoints in sorted(seen.items()):
                doc = self.store.get_doc(self.table, name)
                if doc is None or doc.get("deleting") or (doc.get("instances") or {}).get(str(index)) != node_id:
                    continue
                want = {"node_id": node_id, "ports": endpoints}
                if (doc.get("endpoints") or {}).get(str(index)) != want:
                    doc.setdefault("endpoints", {})[str(index)] = want
                    self.store.put_doc(self.table, name, doc)

    def assign(self, out: dict[str, na.Assignments], docs: list[dict]) -> None:
        runs: dict[str, list[dict]] = {}
        if any(d["spec"].get("kind") in RUNS for d in docs):
            for r in self.store.runs_in(run_records.ACTIVE):
                runs.setdefault(r["app"], []).append(r)
        views = None
        for doc in docs:
            spec = spec_of(doc)
            if spec.connects_to and views is None:
                views = {v.id: v for v in (node_view(n) for n in self.nodes.list(cp.ListNodesRequest()))}
            for index, node_id in sorted((doc.get("instances") or {}).items()):
                if node_id not in out:
                    continue
                hold = (doc["name"], int(index))
                try:
                    a_ = self._assignment(doc, spec, int(index), node_id, views)
                except StratumError as e:
                    self.holds[hold] = str(e)
                    continue
                if a_ is None:
                    self.holds[hold] = "waiting for an endpoint of " + ", ".join(spec.connects_to)
                    continue
                self.holds.pop(hold, None)
                fmt = "csv" if spec.outputs.dataset else ""  # the file STRATUM_OUTPUT names, for the dataset
                for r in runs.get(doc["name"], []):
                    if r["node_id"] == node_id:
                        a_.runs.append(na.RunOrder(id=r["id"], number=r["number"], output_format=fmt))
                out[node_id].apps.append(a_)

    def _assignment(self, doc: dict, spec: a.AppSpec, index: int, node_id: str, views) -> na.AppAssignment | None:
        env = dict(spec.env)
        for name, ref in spec.secret_env.items():
            path, _, key = ref.partition("#")
            data = self._read_secret(path)
            if key not in data:
                raise FailedPrecondition(f'secret_env["{name}"]: the Vault secret at {shown(path)} has no key {shown(key)}')
            env[name] = str(data[key])
        if spec.connects_to:
            wired = self.connections(key_of(self.kind, spec.name), list(spec.connects_to), node_id, views)
            if wired is None:
                return None
            env.update(wired)
        r = spec.requirements
        return na.AppAssignment(app=spec.name, instance=index, kind=spec.kind, spec_version=doc["spec_version"],
                                command=spec.command, args=list(spec.args), env=env, ports=dict(spec.ports),
                                artifact=spec.artifact, health=spec.health, restart=spec.restart, cpu_limit=r.cpu,
                                memory_limit_mb=int(r.memory_mb), kill_timeout_s=kill_timeout(spec))

    # -- what nodes report --------------------------------------------------------------------
    def load_report(self, node_id: str, report: na.ServiceReport) -> None:
        self.reports[node_id] = {(s.app, s.instance): s for s in report.apps}

    def on_report(self, node_id: str, report: na.ServiceReport) -> bool:
        before = self._endpoints_on(node_id)
        self.reports[node_id] = {(s.app, s.instance): s for s in report.apps}
        changed = self._endpoints_on(node_id) != before
        if changed:
            self._remember_endpoints(node_id, report)
        for s in report.apps:
            for r in s.runs:
                changed |= self._take_run(node_id, s, r)
        return changed

    def _endpoints_on(self, node_id: str) -> dict:
        return {k: (st.state in ("running", "healthy"), dict(st.endpoints)) for k, st in self.reports.get(node_id, {}).items()}

    def _take_run(self, node_id: str, st: na.AppStatus, rs: na.RunStatus) -> bool:
        run = self.store.get_run(rs.id)
        if run is None or run["app"] != st.app or run["node_id"] != node_id:
            return False
        if not run_records.take_report(run, rs):
            return False
        if run["state"] == "succeeded":
            self._output(run)
        self.store.update_run(run)
        event(log, "app run " + run["state"], app=run["app"], run=run["number"], exit_code=run["exit_code"],
              attempts=run["attempts"])
        return run["state"] in run_records.FINAL  # the node may drop it once it is no longer assigned

    def _output(self, run: dict) -> None:
        """A succeeded run's output becomes the next version of its dataset; a missing or unloadable
        output fails the run (nothing of the dataset changes)."""
        doc = self.store.get_doc(self.table, run["app"])
        spec = spec_of(doc) if doc else None
        if spec is None or not spec.outputs.dataset:
            return
        if not run.get("output_sha256"):
            run.update(state="failed", message=run.get("message") or "the run wrote no output at $STRATUM_OUTPUT")
            return
        try:
            row = self.datasets.add_version(spec.outputs.dataset, run["output_sha256"], "csv", spec.outputs.mode or "replace")
        except StratumError as e:
            run.update(state="failed", message=f"output rejected: {e}")
            return
        run.update(dataset_version=row.version, message=f"output became version {row.version} of dataset "
                                                        f"{spec.outputs.dataset} ({row.row_count} rows)")
        event(log, "dataset version from app output", dataset=spec.outputs.dataset, version=row.version, app=run["app"],
              run=run["number"])
        self.on_new_data(spec.outputs.dataset, row.version)

    # -- observed state -----------------------------------------------------------------------
    def _node_drained(self, node_id: str, nodes=None) -> bool:
        try:
            return (nodes or self.nodes).get(node_id).drain
        except NotFound:
            return False

    def _node_name(self, node_id: str, nodes=None) -> str:
        if not node_id:
            return ""
        if node_id.startswith(SLOT_PREFIX):
            return node_id[len(SLOT_PREFIX):].split("#")[0] + " (new VM)"
        try:
            return (nodes or self.nodes).get(node_id).name
        except NotFound:
            return node_id

    def list(self) -> list[a.App]:
        from control_plane.nodes import NodeLookup

        self.reconciler.refresh_reports()
        nodes = NodeLookup(self.nodes)
        return [self.get(d["name"], doc=d, nodes=nodes) for d in self.store.list_docs(self.table)]

    def get(self, name: str, *, doc: dict | None = None, nodes=None) -> a.App:
        """The app as the API answers it; `doc` and `nodes` (a NodeLookup) when listing many."""
        if doc is None:
            self.reconciler.refresh_reports()
            doc = self._doc(name)
        spec = spec_of(doc)
        out = a.App(spec=spec, spec_version=doc["spec_version"])
        problems, ready, failed = [], True, False
        for index, node_id in sorted((doc.get("instances") or {}).items(), key=lambda kv: int(kv[0])):
            i = int(index)
            st = self.reports.get(node_id, {}).get((name, i))
            node_name = self._node_name(node_id, nodes)
            ins = a.AppInstance(index=i, node_id=node_id, node_name=node_name, state="pending")
            if st is not None:
                ins.state, ins.restarts, ins.error = st.state, st.restarts, st.error
                ins.endpoints.update(st.endpoints)
                for port, address in st.endpoints.items():
                    out.endpoints[port].addresses.append(address)
            out.instances.append(ins)
            if node_id.startswith(SLOT_PREFIX):
                problems.append(f"instance {i}: waiting for {node_name} to join")
            elif not self._node_ready(node_id, nodes=nodes):
                problems.append(f"instance {i}: node {node_name} is down")
            elif self._node_drained(node_id, nodes):
                problems.append(f"instance {i}: node {node_name} is drained; no other node has room for it yet")
            elif (name, i) in self.holds:
                problems.append(f"instance {i}: {self.holds[(name, i)]}")
            current = st is not None and st.spec_version == doc["spec_version"]
            want = ("running", "healthy") if spec.kind == "service" else ("idle", "running")
            if spec.kind == "service" and spec.health != a.HealthCheck():
                want = ("healthy",)
            if not current or st.state not in want:
                ready = False
            if st is not None and st.state == "failed":
                failed = True
                problems.append(f"instance {i} on {node_name}: {st.error or 'failed'}")
        runs = self.store.list_runs(name, 1)
        if runs:
            out.last_run.CopyFrom(run_records.to_proto(runs[0], self._node_name(runs[0]["node_id"], nodes)))
        if spec.kind == "batch":  # ready once the run of this spec version succeeded
            latest = runs[0] if runs and runs[0]["spec_version"] == doc["spec_version"] else None
            ready = ready and latest is not None and latest["state"] == "succeeded"
            if latest is not None and latest["state"] in ("failed", "lost"):
                failed = True
                problems.append(f"run {latest['number']} {latest['state']}: {latest.get('message') or ''}"
                                + (f"; its log ends:\n{latest['log_tail'][-1500:]}" if latest.get("log_tail") else ""))
        if spec.kind == "periodic":
            set_timestamp(out.next_run_at, schedule.next_after(spec.schedule.cron, spec.schedule.time_zone, time.time()))
        if doc.get("deleting"):
            out.state = "deleting"
        elif failed:
            out.state = "failed"
        else:
            out.state = "ready" if ready and not problems else "pending"
        out.message = "; ".join(problems)
        return out

    async def stream_logs(self, req: a.StreamAppLogsRequest):
        """The bytes of an app's log (a run's, or a service instance's) from the node holding it."""
        doc = await asyncio.to_thread(self._doc, req.name)
        spec = spec_of(doc)
        if not 0 <= req.tail_bytes <= 16 << 20:
            raise InvalidArgument([("tail_bytes", f"tail_bytes = {req.tail_bytes}: give 0 to {16 << 20} (0 for 64 KiB)")])
        if spec.kind in RUNS:
            run = (await asyncio.to_thread(self.store.run_by_number, req.name, req.run) if req.run else
                   next(iter(await asyncio.to_thread(self.store.list_runs, req.name, 1)), None))
            if run is None:
                raise NotFound(f"app {req.name!r} has no run {req.run}" if req.run else f"app {req.name!r} has no runs yet")
            node_id, number = run["node_id"], run["number"]
        else:
            if req.run:
                raise InvalidArgument([("run", f"app {req.name!r} is a service: it has instances, not runs")])
            node_id, number = (doc.get("instances") or {}).get(str(req.instance), ""), 0
            if not node_id:
                raise NotFound(f"app {req.name!r} has no instance {req.instance}")
        ask = na.LogRequest(app=req.name, instance=req.instance if spec.kind == "service" else 0, run=number,
                            tail_bytes=req.tail_bytes or 64 * 1024, follow=req.follow)
        node_name = await asyncio.to_thread(self._node_name, node_id)
        async for data in self.logs.stream(node_id, node_name, ask):
            yield a.LogChunk(data=data, node_name=node_name)
