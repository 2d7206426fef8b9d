"""Nodes: enrollment, sessions, heartbeats and liveness.

Heartbeats are the hot path (10,000 nodes at 5 s is 2,000 a second), so they
update memory only; the latest per node is written to the store in batches.
State changes (ready <-> down) are written at once.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Callable

from google.protobuf import json_format

from control_plane import liveness
from control_plane.errors import AlreadyExists, InvalidArgument, NotFound, Unauthenticated
from control_plane.join_tokens import JoinTokens
from control_plane.store import Conflict, NodeRow, Store
from stratum import pki
from stratum.validation import MAX_CPU_CORES, MAX_MEMORY_MB, check_labels, check_name, check_number, check_tier, shown
from stratum.v1 import control_plane_pb2 as cp, node_agent_pb2 as na, types_pb2 as t

# A node that lost the control plane tries again after a random wait of up to this long (its
# reconnect backoff cap, node_daemon/agent.py BACKOFF_CAP_S): after a restart, nodes get this long
# plus one full timeout to come back before they are marked down, whatever the timeout.
RECONNECT_WAIT_S = 5.0


def utilisation_json(u: t.Utilisation) -> str:
    """Protobuf-JSON-compatible text of a Utilisation, ~10x cheaper than json_format.MessageToJson."""
    return json.dumps({f.name: (list(v) if f.label == f.LABEL_REPEATED else v) for f, v in u.ListFields()})


def new_node_id() -> str:
    return "node-" + secrets.token_hex(8)


def addresses(caps: t.Capabilities) -> list[str]:
    """Non-loopback, non-link-local addresses without prefix length."""
    out = []
    for iface in caps.interfaces:
        for a in iface.addresses:
            ip = a.split("/")[0]
            if ip.startswith(("127.", "fe80:")) or ip == "::1":
                continue
            out.append(ip)
    return out


def matches(node: t.Node, req: cp.ListNodesRequest) -> bool:
    """Does `node` pass every filter set in `req`? (Unset filters pass.)"""
    caps = node.capabilities
    if req.tier and node.tier != req.tier:
        return False
    if req.state and node.state != req.state:
        return False
    if any(node.labels.get(k) != v for k, v in req.labels.items()):
        return False
    if caps.cpu_cores < req.min_cpu or caps.memory_mb < req.min_memory_mb:
        return False
    if req.HasField("gpu") and bool(caps.gpus) != req.gpu:
        return False
    return True


def validate_list_request(req: cp.ListNodesRequest) -> list[tuple[str, str]]:
    problems = check_tier(req.tier, allow_empty=True) + check_labels(dict(req.labels))
    if req.state and req.state not in ("ready", "down"):
        problems.append(("state", f"unknown state {shown(req.state)}: expected ready or down"))
    # NaN passed `min_cpu < 0` and then matched no node at all.
    problems += check_number(req.min_cpu, "min_cpu", 0, MAX_CPU_CORES, hint="cores")
    problems += check_number(req.min_memory_mb, "min_memory_mb", 0, MAX_MEMORY_MB, integer=True, hint="MiB")
    return problems


class NodeRegistry:
    def __init__(self, store: Store, join_tokens: JoinTokens, ca_key_pem: bytes, ca_cert_pem: bytes, timeout: float):
        self.store = store
        self.join_tokens = join_tokens
        self.ca_key_pem, self.ca_cert_pem = ca_key_pem, ca_cert_pem
        self.timeout = timeout
        self._lock = threading.Lock()
        # Whether this process holds the node sessions (the leader; always, with one control plane):
        # its memory then knows better than the store, which it writes in batches.
        self.authoritative: Callable[[], bool] = lambda: True
        self.utilisation: dict[str, t.Utilisation] = {}
        self.take_over(time.time())
        self._caps: dict[str, tuple[str, t.Capabilities]] = {}  # node id -> (capabilities JSON, parsed)

    def take_over(self, now: float) -> None:
        """Start judging liveness from what the store says (at start, and on becoming the leader).
        Every ready node gets its reconnect wait and one full timeout before it is marked down: one
        marked down would lose its runs and have what it runs moved off it (a short timeout is
        shorter than the wait), and after a restart or a failover every node must reconnect."""
        nodes = self.store.list_nodes()
        with self._lock:
            self.states = {n.id: n.state for n in nodes}
            self.last_seen = {n.id: now + RECONNECT_WAIT_S for n in nodes if n.state == "ready"}
            self.utilisation = {}
            self._dirty, self._back = {}, {}

    # -- enrollment ---------------------------------------------------------

    def enroll(self, req: na.EnrollRequest, now: float) -> tuple[NodeRow, bytes]:
        """Check the token, create (or find again) the node, sign its certificate."""
        token = self.join_tokens.authenticate(req.join_token, now)
        tier = req.tier or token.tier
        labels = {**token.labels, **dict(req.labels)}
        problems = check_name(req.name) + check_tier(tier) + check_labels(dict(req.labels))
        try:
            csr = pki.load_csr(req.csr_pem.encode())
        except ValueError as e:
            problems.append(("csr_pem", f"not a valid certificate signing request: {e}"))
            csr = None
        if problems:
            raise InvalidArgument(problems)
        key_fp = pki.public_key_fingerprint(csr.public_key())
        node = self.store.get_node(name=req.name)
        if node is not None:
            if node.public_key_sha256 != key_fp:
                raise AlreadyExists(f"a node named {shown(req.name)} is already enrolled ({node.id}) with another key")
            # Same name and key: a retried enrollment. Same node, no extra token use.
        else:
            node = NodeRow(new_node_id(), req.name, tier, labels, "down",
                           json_format.MessageToJson(req.capabilities, indent=None), "{}", key_fp, token.name, now)
            try:
                self.store.enroll_node(node, token.id, token.max_uses)
            except Conflict as e:
                if "used up" in str(e):
                    raise Unauthenticated(f"join token {token.name!r} is used up ({token.max_uses} of {token.max_uses} uses)") from None
                raise AlreadyExists(f"a node named {req.name!r} is already enrolled") from None
            with self._lock:
                self.states[node.id] = "down"
        cert = pki.sign_client_cert(self.ca_key_pem, self.ca_cert_pem, csr, node.id)
        return node, cert

    # -- sessions and heartbeats --------------------------------------------

    def hello(self, node_id: str, hello: na.Hello, now: float) -> NodeRow:
        node = self.store.get_node(node_id=node_id)
        if node is None:
            raise NotFound(f"node {node_id} is not enrolled here")
        problems = check_labels(dict(hello.labels))
        if problems:
            raise InvalidArgument(problems)
        labels = {**node.labels, **dict(hello.labels)}
        self.store.update_node_session(node_id, json_format.MessageToJson(hello.capabilities, indent=None), labels, "ready", now)
        with self._lock:
            self.last_seen[node_id] = now
            if self.states.get(node_id) != "ready":  # back from down: the next liveness check reports it,
                self._back[node_id] = "ready"        # so what was moved off the node may come back
            self.states[node_id] = "ready"
        return node

    def heartbeat(self, node_id: str, util: t.Utilisation, now: float) -> bool:
        """Record a heartbeat in memory; True when it brought the node back to ready.

        The store learns of the transition at the next liveness check (within a
        second), in one batch with the others: after a partition heals, thousands
        of nodes come back at once and must not cost a transaction each.
        """
        with self._lock:
            self.last_seen[node_id] = now
            self.utilisation[node_id] = util
            self._dirty[node_id] = now
            if self.states.get(node_id) != "ready":
                self.states[node_id] = "ready"
                self._back[node_id] = "ready"
                return True
        return False

    def check_liveness(self, now: float) -> list[tuple[str, str]]:
        """Apply state transitions due at `now`, store first; returns them (including nodes back to ready)."""
        with self._lock:
            changes = liveness.transitions(self.last_seen, self.states, now, self.timeout)
            back, self._back = self._back, {}
        for node_id, _ in changes:
            back.pop(node_id, None)
        changes += list(back.items())
        if changes:
            try:
                self.store.set_node_states(changes)
            except Exception:
                with self._lock:  # retried at the next check
                    for node_id, state in back.items():
                        self._back.setdefault(node_id, state)
                raise
            with self._lock:
                for node_id, state in changes:
                    if state != "down":
                        continue
                    if now - self.last_seen.get(node_id, float("-inf")) >= self.timeout:
                        self.states[node_id] = state
                    else:  # a heartbeat arrived while we wrote: it is ready after all
                        self._back[node_id] = "ready"
        return changes

    def flush_heartbeats(self, batch: int = 1000) -> int:
        """Write the latest heartbeat of every node heard from since the last flush.

        Serialising happens outside the registry lock (heartbeats keep flowing), and
        the store is written in batches so no single transaction holds it for long.
        """
        with self._lock:
            dirty, self._dirty = self._dirty, {}
            latest = [(i, ts, self.utilisation[i]) for i, ts in dirty.items()]
        for start in range(0, len(latest), batch):
            self.store.record_heartbeats([(i, ts, utilisation_json(u)) for i, ts, u in latest[start:start + batch]])
        return len(latest)

    # -- reads ----------------------------------------------------------------

    def forget(self, node_id: str) -> None:
        """Remove a node for good (a cloud VM that was terminated): its record and its live state."""
        self._caps.pop(node_id, None)
        with self._lock:
            self.states.pop(node_id, None)
            self.last_seen.pop(node_id, None)
            self._dirty.pop(node_id, None)
            self._back.pop(node_id, None)
        self.store.delete_node(node_id)

    def _capabilities(self, row: NodeRow) -> t.Capabilities:
        """The node's capabilities, parsed once per text: every placement and every list reads all
        nodes, and parsing their JSON was most of it (a node reports new ones only at Hello)."""
        hit = self._caps.get(row.id)
        if hit is None or hit[0] != row.capabilities:
            caps = t.Capabilities()
            json_format.Parse(row.capabilities, caps, ignore_unknown_fields=True)
            hit = self._caps[row.id] = (row.capabilities, caps)
        return hit[1]

    def to_proto(self, row: NodeRow) -> t.Node:
        node = t.Node(id=row.id, name=row.name, tier=row.tier, labels=row.labels, join_token=row.join_token,
                      drain=row.drain)
        node.capabilities.CopyFrom(self._capabilities(row))
        live = self.authoritative()
        with self._lock:
            node.state = self.states.get(row.id, row.state) if live else row.state
            util = self.utilisation.get(row.id) if live else None
            seen = self.last_seen.get(row.id) if live and row.id in self.utilisation else row.last_heartbeat
        if util is not None:
            node.utilisation.CopyFrom(util)
        elif row.utilisation and row.utilisation != "{}":
            json_format.Parse(row.utilisation, node.utilisation, ignore_unknown_fields=True)
        if seen:
            node.last_heartbeat.FromNanoseconds(int(seen * 1e9))
        node.created_at.FromNanoseconds(int(row.created_at * 1e9))
        node.addresses.extend(addresses(node.capabilities))
        return node

    def list(self, req: cp.ListNodesRequest) -> list[t.Node]:
        problems = validate_list_request(req)
        if problems:
            raise InvalidArgument(problems)
        nodes = (self.to_proto(r) for r in self.store.list_nodes())
        return [n for n in nodes if matches(n, req)]

    def get(self, id_or_name: str) -> t.Node:
        row = self.store.get_node(node_id=id_or_name) if id_or_name.startswith("node-") else None
        row = row or self.store.get_node(name=id_or_name)
        if row is None:
            raise NotFound(f"node {shown(id_or_name)} not found")
        return self.to_proto(row)

    def drain(self, id_or_name: str, drain: bool) -> t.Node:
        """Mark a node drained (nothing new is placed there) or schedulable again; the caller
        rebalances. Idempotent."""
        node = self.get(id_or_name)
        self.store.set_node_drain(node.id, drain)
        node.drain = drain
        return node

    def counts(self) -> dict[str, int]:
        if self.authoritative():
            with self._lock:
                states = list(self.states.values())
        else:
            states = [n.state for n in self.store.list_nodes()]
        out: dict[str, int] = {}
        for s in states:
            out[s] = out.get(s, 0) + 1
        return out


class NodeLookup:
    """Every node read once, for answers that name many nodes (the List* calls): `get` as
    NodeRegistry.get, without a store read and a capabilities parse per placement."""

    def __init__(self, registry: NodeRegistry):
        self._by: dict[str, t.Node] = {}
        for n in registry.list(cp.ListNodesRequest()):
            self._by[n.id] = self._by[n.name] = n

    def get(self, id_or_name: str) -> t.Node:
        try:
            return self._by[id_or_name]
        except KeyError:
            raise NotFound(f"node {shown(id_or_name)} not found") from None
