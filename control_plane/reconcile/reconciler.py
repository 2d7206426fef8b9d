"""The reconciler: one loop for services and apps, as Nomad's evaluate -> plan -> apply.

    evaluate   read the nodes, cloud pools and every workload's desired state (a Snapshot)
    plan       reconcile/plan.py, pure
    apply      write the new placements to the store first, tell the cloud pools how many VMs
               the placements use, then push each connected node its assignments

Each resource (control_plane/services.py, control_plane/apps/) keeps its own desired-state CRUD
and validation and registers as a `Kind`: how a stored document becomes a Workload, what a node
is told to run for it, and what nodes report back. Other loops (the autoscaler, retraining) change
desired state only through those resources, which come here to place.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from typing import Callable, Protocol

from control_plane.errors import NotFound
from control_plane.provision.pools import POOL_LABEL, SLOT_PREFIX
from control_plane.reconcile.plan import Plan, plan
from control_plane.reconcile.sessions import Sessions
from control_plane.reconcile.snapshot import Snapshot, Workload, key_of, node_view
from control_plane.store import Store
from stratum.runtime.latency import REMOVED
from stratum.logs import event
from stratum.v1 import control_plane_pb2 as cp, node_agent_pb2 as na

log = logging.getLogger("stratum.reconcile")


class Kind(Protocol):
    kind: str  # "service" or "app"
    table: str  # the store table of its documents ({"name", "placement", "deleting", ...})

    def workload(self, doc: dict) -> Workload: ...

    def placed(self, doc: dict, placement: dict[str, int]) -> None:
        """Record a new placement in the document (before it is written)."""

    def assign(self, out: dict[str, na.Assignments], docs: list[dict]) -> None:
        """Add what each node in `out` should run of these (live) documents."""

    def on_report(self, node_id: str, report: na.ServiceReport) -> bool:
        """Take a node's report; True when an endpoint changed (other nodes must hear of it)."""

    def load_report(self, node_id: str, report: na.ServiceReport) -> None:
        """Take a node's report as stored by the leader (a follower answering reads): memory only."""

    def reports_on(self, node_id: str) -> set[str]:
        """Names this node last reported running."""

    def forget(self, name: str) -> None:
        """A deleted document's in-memory state."""


class Reconciler:
    def __init__(self, store: Store, nodes, pools=None):
        self.store, self.nodes, self.pools = store, nodes, pools
        self.kinds: dict[str, Kind] = {}
        self.sessions = Sessions(self._assignments)
        # Placing and writing a placement is one step: two API calls placing at once must not both
        # take the same free room.
        self.lock = threading.RLock()
        self.waiting_for_vms = False  # some replica is placed on a cloud VM that has not joined yet
        self._deleting: dict[str, set[str] | None] = {}  # kind -> names being deleted; None: not read yet
        # A delete marked while finish_deletes reads the documents must not be overwritten by what that
        # pass read (the document was not deleting yet): the delete would never finish.
        self._deleting_lock = threading.Lock()
        # With several control planes only the leader holds node sessions; it stores what each node
        # last reported (without its per-minute metrics and samples) and the others read that.
        self.leading: Callable[[], bool] = lambda: True
        self._stored_reports: dict[str, bytes] = {}  # node id -> the report last written
        self._reports_read = 0.0  # monotonic: when a follower last read them

    def register(self, kind: Kind) -> None:
        self.kinds[kind.kind] = kind
        self._deleting[kind.kind] = None

    # -- evaluate -----------------------------------------------------------------------------
    def views(self, slots: bool = True):
        """Enrolled nodes, and the VMs cloud pools may still start (placement: one view per VM;
        analysis: one per pool, with how many it may start)."""
        views = [node_view(n) for n in self.nodes.list(cp.ListNodesRequest())]
        if self.pools is None:
            return views, {}
        more, room = self.pools.templates(slots)
        return views + more, room

    def docs(self, kind: str) -> list[dict]:
        return self.store.list_docs(self.kinds[kind].table)

    def snapshot(self, slots: bool = True, extra: tuple[Workload, ...] = ()) -> Snapshot:
        """Everything placement needs; `extra` adds or replaces workloads (one being created or checked)."""
        nodes, room = self.views(slots)
        workloads = {}
        for kind in self.kinds.values():
            for doc in self.store.list_docs(kind.table):
                w = kind.workload(doc)
                workloads[w.key] = w
        for w in extra:
            workloads[w.key] = w
        return Snapshot(nodes, workloads, room)

    # -- plan + apply -------------------------------------------------------------------------
    def place(self, w: Workload) -> tuple[dict[str, int], list[str]]:
        """Where `w` (created, changed or scaled) goes on top of everything else, and why not when
        not all of it fits. The caller writes the placement (holding self.lock) and calls changed()."""
        p = plan(self.snapshot(extra=(w,)), place=(w.key,))
        if w.key in p.unplaced:
            return w.placement, p.unplaced[w.key]
        return p.placements.get(w.key, w.placement), []

    def rebalance(self) -> Plan:
        """After nodes went down or joined: move the replicas of down nodes to nodes that fit, and make
        a bounded number of moves that improve spread (control_plane/placement/rank.py: rebalance)."""
        with self.lock:
            snap = self.snapshot()
            p = plan(snap, rebalance=True)
            for key, placement in p.placements.items():
                w = snap.workloads[key]
                kind = self.kinds[w.kind]
                doc = self.store.get_doc(kind.table, w.name)
                if doc is None or doc.get("deleting"):
                    continue
                kind.placed(doc, placement)
                self.store.put_doc(kind.table, w.name, doc)
                event(log, f"{w.kind} moved", **{w.kind: w.name}, placement=placement)
        self.changed()
        return p

    def changed(self) -> None:
        """Desired state changed: the pools learn what they must run, the nodes what they must run."""
        self.tell_pools()
        self.push()

    def tell_pools(self) -> None:
        """How many VMs each pool should run: its joined VMs that hold replicas or instances, plus one
        per new-VM slot something was placed on."""
        if self.pools is None:
            return
        by_node = {n.id: n.labels.get(POOL_LABEL, "") for n in self.nodes.list(cp.ListNodesRequest())}
        used: dict[str, set] = {}
        waiting = False
        for kind in self.kinds.values():
            for d in self.store.list_docs(kind.table):
                if d.get("deleting"):
                    continue
                for node_id, k in d["placement"].items():
                    if not k:
                        continue
                    slot = node_id.startswith(SLOT_PREFIX)
                    waiting |= slot
                    pool = node_id[len(SLOT_PREFIX):].split("#")[0] if slot else by_node.get(node_id)
                    if pool:
                        used.setdefault(pool, set()).add(node_id)
        self.waiting_for_vms = waiting
        self.pools.set_demand({pool: len(ids) for pool, ids in used.items()})

    def nodes_in_use(self) -> set[str]:
        """Ids of nodes something is placed on (a cloud VM among them is not idle)."""
        return {n for kind in self.kinds.values() for d in self.store.list_docs(kind.table)
                for n, k in d["placement"].items() if k}

    # -- what nodes are told ------------------------------------------------------------------
    def push(self, node_ids: list[str] | None = None) -> None:
        self.sessions.push(node_ids)

    def assignments_for(self, node_id: str) -> na.Assignments:
        return self._assignments([node_id])[node_id]

    def _assignments(self, node_ids) -> dict[str, na.Assignments]:
        """Assignments for these nodes, from one read of each kind's documents."""
        out = {n: na.Assignments() for n in node_ids}
        for kind in self.kinds.values():
            kind.assign(out, [d for d in self.store.list_docs(kind.table) if not d.get("deleting")])
        return out

    def open_session(self, node_id: str):
        return self.sessions.open(node_id)

    def close_session(self, node_id: str, q) -> None:
        self.sessions.close(node_id, q)

    # -- what nodes report --------------------------------------------------------------------
    def on_report(self, node_id: str, report: na.ServiceReport) -> None:
        moved = False
        for kind in self.kinds.values():
            moved |= bool(kind.on_report(node_id, report))
        self._store_report(node_id, report)
        if moved:
            self.push()  # a new endpoint: peers, and apps connecting to it, get the new address
        self.finish_deletes()

    def _store_report(self, node_id: str, report: na.ServiceReport) -> None:
        """What the node runs, for the other control planes: written when it changed."""
        kept = na.ServiceReport()
        kept.CopyFrom(report)
        for i in reversed(range(len(kept.services))):
            if kept.services[i].state == REMOVED:  # minutes of a service the node left: counted, not kept
                del kept.services[i]
        for st in kept.services:
            del st.minutes[:]
            st.samples_json = ""
        for st in kept.apps:
            del st.runs[:]  # runs are records of their own (app_runs)
        body = kept.SerializeToString(deterministic=True)
        if self._stored_reports.get(node_id) == body:
            return
        self.store.put_node_report(node_id, {"report": base64.b64encode(body).decode()})
        self._stored_reports[node_id] = body

    def refresh_reports(self, max_age_s: float = 1.0) -> None:
        """A follower: take the reports the leader stored, at most every max_age_s."""
        if self.leading() or time.monotonic() - self._reports_read < max_age_s:
            return
        self._reports_read = time.monotonic()
        self._load_stored_reports()

    def adopt_stored_reports(self) -> None:
        """Just elected: start from what the last leader stored of each node's report. The nodes
        reconnect one by one, and the first assignments would otherwise wire an app to whichever
        endpoint of a service came back first: a changed environment restarts the app (on a new
        port, when its port is picked). Each node's own report replaces its stored one as it comes."""
        self._load_stored_reports()

    def _load_stored_reports(self) -> None:
        for node_id, doc in self.store.node_reports().items():
            report = na.ServiceReport.FromString(base64.b64decode(doc["report"]))
            for kind in self.kinds.values():
                kind.load_report(node_id, report)

    def mark_deleting(self, kind: str, name: str) -> None:
        """`name` is marked deleting in the store (written before this call)."""
        with self._deleting_lock:
            if self._deleting.get(kind) is not None:
                self._deleting[kind].add(name)

    def finish_deletes(self) -> None:
        """Remove documents marked deleting once no ready node reports running them."""
        with self._deleting_lock:
            self._finish_deletes()

    def _finish_deletes(self) -> None:
        for name, kind in self.kinds.items():
            if self._deleting.get(name) is not None and not self._deleting[name]:
                continue  # nothing of this kind is being deleted: no need to read it on every report
            deleting: set[str] = set()
            for doc in self.store.list_docs(kind.table):
                if not doc.get("deleting"):
                    continue
                still = [n for n in doc["placement"] if doc["name"] in kind.reports_on(n) and self._node_ready(n)]
                if not still:
                    self.store.delete_doc(kind.table, doc["name"])
                    kind.forget(doc["name"])
                    event(log, f"{name} deleted", **{name: doc["name"]})
                else:
                    deleting.add(doc["name"])
            self._deleting[name] = deleting

    def _node_ready(self, node_id: str) -> bool:
        try:
            return self.nodes.get(node_id).state == "ready"
        except NotFound:
            return False


__all__ = ["Kind", "Reconciler", "key_of"]
