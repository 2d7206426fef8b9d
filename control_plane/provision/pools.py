"""Cloud pools: desired state (store table `pools`), one record per VM (`pool_vms`), and the
reconciler that keeps the cloud in line with them.

A VM's record is written before the cloud is asked for it, with an idempotency token that also
goes on the VM as a tag (and EC2's ClientToken). So a control plane killed at any point restarts
and converges without an orphaned or a doubled VM:

  killed before the request      the record is "requested" and no VM has its tag: request it;
  killed after it, before saving the VM is found by its tag and adopted;
  a VM tagged with the pool but with no record (made by hand, or a lost store) is terminated.

The reconciler (a thread; `wake()` runs it at once) lists the pool's VMs through libcloud only
while something is in flight (requested, booting or terminating) and once after a start, so a
steady pool costs no API calls. Each VM enrolls itself (user data, a single-use join token scoped
to the pool's tier and labels); it is "joined" when a ready node of its name exists. Decisions are
pure (control_plane/provision/scaling.py). Credentials are read from Vault for each cloud driver
opened and kept in memory only.
"""

from __future__ import annotations

import hashlib
import contextlib
import logging
import signal
import os
import secrets
import threading
import time
from typing import Callable

from google.protobuf import json_format

from control_plane.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from control_plane.join_tokens import JoinTokens
from control_plane.nodes import NodeRegistry
from control_plane.placement.types import NodeView
from control_plane.provision.drivers import POOL_TAG, TOKEN_TAG, Cloud, CloudError, parse_options
from control_plane.provision.scaling import LIVE, PoolSize, Vm, plan
from control_plane.provision.userdata import user_data
from control_plane.provision.vault import Vault, VaultError
from control_plane.store import Store
from control_plane.store.db import Fenced
from stratum.logs import event
from stratum.validation import (MAX_REF, MAX_TEXT, check_labels, check_name, check_number, check_seconds, check_text,
                                check_tier, shown, shown_key)
from stratum.v1 import control_plane_pb2 as cp, pools_pb2 as p

log = logging.getLogger("stratum.provision")

POOL_LABEL = "stratum.io/pool"
SLOT_PREFIX = "pool:"  # placement ids of a pool's VMs not joined yet: pool:<name>#<vm name> or #new<k>
DEFAULT_GRACE_S = 300.0
MAX_NODES = 1000
MAX_PRICE = 1e6  # per VM hour
# A VM is named <pool>-<8 hex> and enrolls with join token vm-<pool>-<8 hex>: both must stay names
# (at most 63 characters), so a pool name has at most 63 - 12.
MAX_POOL_NAME = 51
# Fields that decide what a VM is: changing one replaces the pool (the provider plans a replacement).
IMMUTABLE = ("driver", "region", "size", "image", "credentials", "driver_options", "tier", "labels", "server")


def crash_point(name: str) -> None:
    """Fault injection for the restart and failover tests: STRATUM_CRASH_AT=<name> ends the process
    right here; STRATUM_PAUSE_AT=<name> stops it here (SIGSTOP), as a long pause would, until the
    test continues it (SIGCONT)."""
    if os.environ.get("STRATUM_CRASH_AT") == name:
        os._exit(137)
    if os.environ.get("STRATUM_PAUSE_AT") == name:
        os.kill(os.getpid(), signal.SIGSTOP)
        time.sleep(0.1)  # the stop reaches every thread by then: nothing after this line runs before SIGCONT


def spec_json(spec: p.CloudPoolSpec) -> dict:
    return json_format.MessageToDict(spec, preserving_proto_field_name=True)


def validate_spec(spec: p.CloudPoolSpec) -> list[tuple[str, str]]:
    """Problems knowable without Vault or the cloud, as (attribute path, message)."""
    problems = check_name(spec.name)
    if not problems and len(spec.name) > MAX_POOL_NAME:
        problems.append(("name", f"use at most {MAX_POOL_NAME} characters: VM names and their join tokens add 12"))
    for f, limit in (("driver", MAX_REF), ("region", MAX_REF), ("size", MAX_REF), ("image", MAX_REF),
                     ("credentials", MAX_TEXT), ("server", MAX_REF)):
        problems += check_text(getattr(spec, f), f, limit)
    for f, hint in (("driver", 'a libcloud compute driver name, e.g. "ec2"'), ("size", 'e.g. "t3.large"'),
                    ("image", 'an image id, e.g. "ami-12c6146b"'),
                    ("credentials", 'a Vault KV v2 path holding `key` and `secret`, e.g. "secret/stratum/aws"')):
        if not getattr(spec, f).strip():
            problems.append((f, f"give {f}: {hint}"))
    if spec.min_nodes < 0:
        problems.append(("min_nodes", f"min_nodes = {spec.min_nodes}: must be 0 or more"))
    if spec.max_nodes and spec.max_nodes < spec.min_nodes:
        problems.append(("max_nodes", f"max_nodes = {spec.max_nodes} is below min_nodes = {spec.min_nodes}"))
    if max(spec.max_nodes, spec.min_nodes) > MAX_NODES:
        problems.append(("max_nodes", f"at most {MAX_NODES} VMs per pool"))
    problems += check_tier(spec.tier, allow_empty=True)
    problems += check_labels(dict(spec.labels))
    if POOL_LABEL in spec.labels:
        problems.append((f'labels["{POOL_LABEL}"]', "set by Stratum on every VM of a pool"))
    for size, price in spec.prices.items():
        path = f'prices["{shown_key(size)}"]'
        problems += check_text(size, path, MAX_REF) + check_number(price, path, 0, MAX_PRICE, hint="price per VM hour")
    problems += check_seconds(spec.idle_grace_s, "idle_grace", hint='a duration, e.g. "5m"; at most 3650d')
    if spec.server:
        host, _, port = spec.server.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            problems.append(("server", f"server = {shown(spec.server)}: give host:port as the VMs reach the control plane"))
    problems += parse_options(dict(spec.driver_options))[1]
    return problems


def _size_of(spec: p.CloudPoolSpec) -> PoolSize:
    return PoolSize(spec.min_nodes, max(spec.max_nodes, spec.min_nodes), spec.idle_grace_s or DEFAULT_GRACE_S)


class Pools:
    def __init__(self, store: Store, join_tokens: JoinTokens, nodes: NodeRegistry, *, server: str,
                 vault: Callable[[], Vault] = Vault.from_env, busy_nodes: Callable[[], set[str]] = set,
                 interval: float = 5.0):
        self.store, self.join_tokens, self.nodes = store, join_tokens, nodes
        self.server = server  # host:port VMs enroll with, unless a pool says otherwise
        self._vault_factory, self._vault = vault, None
        self.busy_nodes = busy_nodes  # node ids that run replicas (control_plane/services.py)
        self.interval = interval
        self.demand: dict[str, int] = {}  # pool -> VMs the services want (set by placement)
        self.status: dict[str, tuple[str, str]] = {}  # pool -> (state, message), observed by the reconciler
        self._clouds: dict[str, tuple[str, Cloud]] = {}
        self._synced: set[str] = set()  # pools listed in the cloud since this process started
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one reconcile pass at a time
        self._doc_lock = threading.Lock()  # a pool document's read-modify-write (API changes, status)
        # With several control planes only the leader provisions (control_plane/leadership.py):
        self.may_act: Callable[[], bool] = lambda: True  # leading now, by this process's own clock
        self.guard = contextlib.nullcontext  # the leader's fence around each pass's writes
        self._stored_status: dict[str, list] = {}  # pool -> the status last written to its document

    # -- credentials and drivers --------------------------------------------------------------
    def vault(self) -> Vault:
        if self._vault is None:
            self._vault = self._vault_factory()
        return self._vault

    def _open(self, spec: p.CloudPoolSpec) -> Cloud:
        key, secret = self.vault().credentials(spec.credentials)
        return Cloud.open(spec.driver, spec.region, key, secret, dict(spec.driver_options), dict(spec.prices))

    def _cloud(self, name: str, spec: p.CloudPoolSpec) -> Cloud:
        fp = hashlib.sha256(spec.SerializeToString(deterministic=True)).hexdigest()
        held = self._clouds.get(name)
        if held is None or held[0] != fp:
            held = self._clouds[name] = (fp, self._open(spec))
        return held[1]

    # -- desired state ------------------------------------------------------------------------
    def check(self, spec: p.CloudPoolSpec) -> dict:
        """Plan-time check: fields, then Vault, the driver, the size and the image (read-only calls).
        Returns the size's capabilities; InvalidArgument naming the attribute otherwise."""
        problems = validate_spec(spec)
        if problems:
            raise InvalidArgument(problems)
        try:
            cloud = self._open(spec)
        except VaultError as e:
            raise InvalidArgument([("credentials", f"credentials = {shown(spec.credentials)}: {e}")]) from None
        except CloudError as e:
            raise InvalidArgument([("driver", f"driver = {shown(spec.driver)}, region = {shown(spec.region)}: {e}")]) from None
        problems = []
        size = None
        try:
            size = cloud.size(spec.size)
        except CloudError as e:
            problems.append(("size", f"size = {shown(spec.size)}: {e}"))
        try:
            cloud.check_image(spec.image)
        except CloudError as e:
            problems.append(("image", f"image = {shown(spec.image)}: {e}"))
        if problems:
            raise InvalidArgument(problems)
        return {"cpu_cores": size.cpu_cores, "memory_mb": size.memory_mb, "price_per_hour": size.price_per_hour}

    def _doc(self, name: str) -> dict:
        doc = self.store.get_doc("pools", name)
        if doc is None:
            raise NotFound(f"cloud pool {shown(name)} not found")
        return doc

    def create(self, spec: p.CloudPoolSpec) -> p.CloudPool:
        existing = self.store.get_doc("pools", spec.name)
        if existing is not None and existing.get("deleting"):
            raise FailedPrecondition(f"cloud pool {spec.name!r} is still being deleted; try again when its VMs are gone")
        if existing is not None:
            if existing["spec"] == spec_json(spec):
                return self.get(spec.name)
            raise AlreadyExists(f"cloud pool {spec.name!r} already exists with a different spec; "
                                f"import it (terraform import) or choose another name")
        size = self.check(spec)
        self.store.put_doc("pools", spec.name, {"name": spec.name, "spec": spec_json(spec), "size": size,
                                                "deleting": False, "created_at": time.time()})
        event(log, "cloud pool created", pool=spec.name, driver=spec.driver, size=spec.size, min_nodes=spec.min_nodes)
        self.wake()
        return self.get(spec.name)

    def update(self, spec: p.CloudPoolSpec) -> p.CloudPool:
        with self._doc_lock:
            return self._update(spec)

    def _update(self, spec: p.CloudPoolSpec) -> p.CloudPool:
        doc = self._doc(spec.name)
        if doc.get("deleting"):
            raise NotFound(f"cloud pool {spec.name!r} is being deleted")
        old = json_format.ParseDict(doc["spec"], p.CloudPoolSpec())
        changed = [f for f in IMMUTABLE if getattr(old, f) != getattr(spec, f)]
        if changed:
            raise FailedPrecondition(f"changing {', '.join(changed)} of cloud pool {spec.name!r} replaces it")
        problems = validate_spec(spec)
        if problems:
            raise InvalidArgument(problems)
        doc["spec"] = spec_json(spec)
        if dict(old.prices) != dict(spec.prices):
            doc["size"] = self.check(spec)
        self.store.put_doc("pools", spec.name, doc)
        event(log, "cloud pool updated", pool=spec.name, min_nodes=spec.min_nodes, max_nodes=spec.max_nodes)
        self.wake()
        return self.get(spec.name)

    def delete(self, name: str) -> None:
        with self._doc_lock:
            doc = self.store.get_doc("pools", name)
            if doc is None or doc.get("deleting"):
                return
            doc["deleting"] = True
            self.store.put_doc("pools", name, doc)
        event(log, "cloud pool deleting", pool=name)
        self.wake()

    def vms(self, name: str) -> list[dict]:
        return sorted((d for d in self.store.list_docs("pool_vms") if d["pool"] == name), key=lambda d: d["requested_at"])

    def get(self, name: str) -> p.CloudPool:
        doc = self._doc(name)
        spec = json_format.ParseDict(doc["spec"], p.CloudPoolSpec())
        size = doc.get("size") or {}
        out = p.CloudPool(spec=spec, cpu_cores=size.get("cpu_cores", 0.0), memory_mb=size.get("memory_mb", 0),
                          price_per_hour=size.get("price_per_hour", 0.0))
        for v in self.vms(name):
            if v["state"] == "terminated":
                continue
            vm = p.PoolVm(name=v["name"], token=v["token"], instance_id=v.get("instance_id", ""), state=v["state"],
                          node_id=v.get("node_id", ""), message=v.get("message", ""))
            vm.requested_at.FromNanoseconds(int(v["requested_at"] * 1e9))
            out.vms.append(vm)
        out.joined = sum(1 for v in out.vms if v.state == "joined")
        # the leader's own observation, else the one it stored (a follower answering)
        state, message = self.status.get(name) or tuple(doc.get("status") or ("scaling", "waiting for the reconciler"))
        if doc.get("deleting"):
            state = "deleting"
        elif state != "failed":
            state = "ready" if out.joined >= spec.min_nodes and all(v.state == "joined" for v in out.vms) else "scaling"
        out.state, out.message = state, message
        return out

    # -- what placement sees ------------------------------------------------------------------
    def templates(self, slots: bool) -> tuple[list[NodeView], dict[str, int]]:
        """Pools as placement sees them, and how many more VMs each may start (max_nodes less its
        live VMs). With `slots` (placement, which puts at most a VM's worth on a view): one view per
        VM requested or booting ("pool:<name>#<vm name>": replicas wait there until it joins) and one
        per VM the pool may still start ("pool:<name>#new<k>"). Without (the analysis, which
        multiplies by the count): one view per pool."""
        views, room = [], {}
        by_pool: dict[str, list[dict]] = {}  # one read of the VM records for every pool
        for v in sorted(self.store.list_docs("pool_vms"), key=lambda d: d["requested_at"]):
            by_pool.setdefault(v["pool"], []).append(v)
        for doc in self.store.list_docs("pools"):
            if doc.get("deleting"):
                continue
            spec = json_format.ParseDict(doc["spec"], p.CloudPoolSpec())
            size = doc.get("size") or {}
            vms = by_pool.get(spec.name, [])
            coming = [v["name"] for v in vms if v["state"] in ("requested", "booting")]
            live = sum(1 for v in vms if v["state"] in LIVE)
            room[spec.name] = free = max(max(spec.max_nodes, spec.min_nodes) - live, 0)
            labels = {**dict(spec.labels), POOL_LABEL: spec.name}
            if slots:
                ids = [(f"#{n}", f"{n} (booting)") for n in coming] + [(f"#new{k}", f"{spec.name} (new VM {k})")
                                                                     for k in range(1, free + 1)]
            else:
                ids = [("", f"{spec.name} (new VM)")]
            for suffix, name in ids:
                views.append(NodeView(f"{SLOT_PREFIX}{spec.name}{suffix}", name, spec.tier or "cloud", labels, "x86_64",
                                      float(size.get("cpu_cores", 0.0)), int(size.get("memory_mb", 0)), True,
                                      zone=labels.get("zone", ""), pool=spec.name,
                                      price_per_hour=float(size.get("price_per_hour", 0.0))))
        return views, room

    def set_demand(self, wanted: dict[str, int]) -> None:
        """VMs the services want from each pool (joined ones in use, plus new ones placed on)."""
        wanted = {k: v for k, v in wanted.items() if v}
        if wanted != self.demand:
            self.demand = wanted
            event(log, "cloud pool demand", demand=wanted)
            self.wake()

    # -- the reconciler -----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="cloud-pools", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            if not self.may_act():
                continue
            try:
                with self.guard():
                    self.reconcile_all()
            except Exception:  # noqa: BLE001 - the loop must outlive any one bad pass
                log.exception("cloud pool reconcile failed")

    def take_over(self) -> None:
        """A new leader: list every pool's VMs in the cloud again before acting (an earlier leader
        may have requested some it never recorded as booting), and forget what it observed."""
        with self._lock:
            self._synced.clear()
            self.status.clear()
            self._stored_status.clear()

    def reconcile_all(self) -> None:
        with self._lock:
            if self.store.list_docs("pools") and self._vault is not None:
                try:
                    self.vault().keep_alive()
                except VaultError as e:
                    event(log, "vault token renewal failed", level=logging.WARNING, error=str(e))
            for doc in self.store.list_docs("pools"):
                name = doc["name"]
                try:
                    self._reconcile(doc)
                    if self.status.get(name, ("",))[0] == "failed":
                        self.status[name] = ("scaling", "")
                except (VaultError, CloudError) as e:
                    self.status[name] = ("failed", str(e))
                    event(log, "cloud pool failed", level=logging.WARNING, pool=name, error=str(e))
                self._store_status(name)

    def _store_status(self, name: str) -> None:
        """The state and message observed, in the pool's document, for the other control planes."""
        status = list(self.status.get(name) or ())
        if not status or self._stored_status.get(name) == status:
            return
        with self._doc_lock:
            doc = self.store.get_doc("pools", name)
            if doc is None:
                return
            doc["status"] = status
            self.store.put_doc("pools", name, doc)
        self._stored_status[name] = status

    def _save(self, v: dict) -> None:
        self.store.put_doc("pool_vms", f"{v['pool']}/{v['token']}", v)

    def _reconcile(self, doc: dict) -> None:
        name = doc["name"]
        spec = json_format.ParseDict(doc["spec"], p.CloudPoolSpec())
        vms = self.vms(name)
        now = time.time()
        # Only these need the cloud's view: a booting VM joins through the node registry, not the cloud.
        in_flight = any(v["state"] in ("requested", "terminating") for v in vms)
        cloud = None  # opened (Vault read, driver) only when this pass needs the cloud

        def get_cloud() -> Cloud:
            nonlocal cloud
            if cloud is None:
                cloud = self._cloud(name, spec)
            return cloud

        if in_flight or name not in self._synced or doc.get("deleting"):
            self._observe(get_cloud(), name, spec, vms)
            self._synced.add(name)
            vms = self.vms(name)  # observing adopted, finished or re-requested some
        self._mark_joined(vms)
        live = [v for v in vms if v["state"] in LIVE]
        if doc.get("deleting"):
            for v in live:
                self._terminate(get_cloud(), v, "the pool is being deleted")
            if not [v for v in self.vms(name) if v["state"] != "terminated"]:
                self._forget_pool(name)
            return
        busy = self.busy_nodes()
        acts = plan(_size_of(spec), [self._vm(v, busy, now) for v in vms], self._wanted(spec), now)
        by_token = {v["token"]: v for v in vms}
        for token in acts.fail:
            by_token[token]["message"] = "did not join in time; replaced"
        for token in acts.terminate:
            self._terminate(get_cloud(), by_token[token], "; ".join(acts.reasons))
        for _ in range(acts.create):
            self._request(get_cloud(), name, spec, self._record(name, spec))
        if acts.create or acts.terminate:
            event(log, "cloud pool scaled", pool=name, create=acts.create, terminate=len(acts.terminate),
                  why="; ".join(acts.reasons))
        self.status[name] = ("scaling" if acts.create else "ready", "; ".join(acts.reasons))

    def _wanted(self, spec: p.CloudPoolSpec) -> int:
        return max(spec.min_nodes, self.demand.get(spec.name, 0))

    def _vm(self, v: dict, busy: set[str], now: float) -> Vm:
        """The record as scaling sees it; the time its node became idle is kept in the record."""
        node = v.get("node_id", "")
        idle = v.get("idle_since")
        want = (idle or now) if v["state"] == "joined" and node not in busy else None
        if want != idle and v["state"] in LIVE:
            v["idle_since"] = want
            self._save(v)
        return Vm(v["token"], v["state"], v["requested_at"], node, want)

    def _observe(self, cloud: Cloud, name: str, spec: p.CloudPoolSpec, vms: list[dict]) -> None:
        """Match the cloud's VMs of this pool with the records: adopt, finish terminations, and
        terminate VMs nobody recorded."""
        found = {n.extra.get("tags", {}).get(TOKEN_TAG): n for n in cloud.list({POOL_TAG: name})}
        found = {t: n for t, n in found.items() if t and n.state not in ("terminated",)}
        known = {v["token"] for v in vms}
        for v in vms:
            n = found.get(v["token"])
            if v["state"] == "requested":
                if n is not None:  # answered before a crash, or a response that got lost: adopt it
                    v.update(instance_id=n.id, state="booting", message="booting")
                    self._save(v)
                    event(log, "cloud VM adopted", pool=name, vm=v["name"], instance=n.id)
                else:
                    self._request(cloud, name, spec, v)
            elif v["state"] == "terminating":
                if n is None:
                    self._finish(v)
                else:
                    cloud.destroy(n)
        for token, n in found.items():
            if token not in known:
                event(log, "terminating unrecorded VM", level=logging.WARNING, pool=name, instance=n.id)
                cloud.destroy(n)

    def _mark_joined(self, vms: list[dict]) -> None:
        booting = {v["name"]: v for v in vms if v["state"] == "booting"}
        if not booting:
            return
        for node in self.nodes.list(cp.ListNodesRequest()):
            v = booting.get(node.name)
            if v is not None and node.state == "ready":
                v.update(state="joined", node_id=node.id, message="")
                self._save(v)
                event(log, "cloud VM joined", pool=v["pool"], vm=v["name"], node=node.id)

    def _record(self, name: str, spec: p.CloudPoolSpec) -> dict:
        """Write the VM's record, and its join token, before anything is asked of the cloud."""
        token = secrets.token_hex(16)
        vm_name = f"{name}-{token[:8]}"
        labels = {**dict(spec.labels), POOL_LABEL: name}
        self.join_tokens.create(cp.JoinTokenSpec(name=f"vm-{vm_name}", tier=spec.tier or "cloud", labels=labels,
                                                 ttl="2h", max_uses=1, description=f"VM of cloud pool {name}"))
        v = {"pool": name, "token": token, "name": vm_name, "state": "requested", "instance_id": "", "node_id": "",
             "message": "requested", "requested_at": time.time()}
        self._save(v)
        return v

    def _request(self, cloud: Cloud, name: str, spec: p.CloudPoolSpec, v: dict) -> None:
        crash_point("before-cloud-create")
        if not self.may_act():
            # Paused past the lease (or cut off): another control plane may lead now and request
            # this VM itself. The record stays "requested"; whoever leads lists the cloud first.
            raise Fenced(f"not leading any more: VM {v['name']} is left for the leader to request")
        row = self.join_tokens.get(f"vm-{v['name']}")
        data = user_data(pool=name, node_name=v["name"], server=spec.server or self.server,
                         join_token=self.join_tokens.secret_text(row))
        try:
            node = cloud.create(v["name"], spec.size, spec.image, v["token"], data,
                                {POOL_TAG: name, TOKEN_TAG: v["token"], "Name": v["name"]})
        except CloudError as e:
            v["message"] = f"request failed, retrying: {e}"
            self._save(v)
            raise
        crash_point("after-cloud-create")
        v.update(instance_id=node.id, state="booting", message="booting")
        self._save(v)
        event(log, "cloud VM requested", pool=name, vm=v["name"], instance=node.id)

    def _terminate(self, cloud: Cloud, v: dict, why: str) -> None:
        if v.get("node_id"):
            self.nodes.forget(v["node_id"])
        v.update(state="terminating", message=why)
        self._save(v)
        if v.get("instance_id"):
            cloud.destroy_id(v["instance_id"], v["name"])
        event(log, "cloud VM terminating", pool=v["pool"], vm=v["name"], instance=v.get("instance_id"), why=why)

    def _finish(self, v: dict) -> None:
        self.join_tokens.delete(f"vm-{v['name']}")
        self.store.delete_doc("pool_vms", f"{v['pool']}/{v['token']}")
        event(log, "cloud VM terminated", pool=v["pool"], vm=v["name"], instance=v.get("instance_id"))

    def _forget_pool(self, name: str) -> None:
        self.store.delete_doc("pools", name)
        self._clouds.pop(name, None)
        self._synced.discard(name)
        self.status.pop(name, None)
        self.demand.pop(name, None)
        event(log, "cloud pool deleted", pool=name)

