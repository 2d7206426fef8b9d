"""Resource `stratum_cloud_pool`: cloud VMs, rented through libcloud, that join as nodes.

Plan asks the control plane to check the pool (`ValidateCloudPool`): the fields, that the Vault
path can be read, and that the cloud offers the size and the image; a bad one fails at plan on
its attribute. Create records the pool and waits (up to `timeouts.create`, default 10m) until
`min_nodes` VMs have been requested from the cloud; they join as nodes as they boot. Changing
`min_nodes`, `max_nodes`, `idle_grace` or `prices` updates the pool in place; any other argument
decides what a VM is, so changing it replaces the pool. Destroy waits until every VM of the pool
is terminated. The cloud keys stay in Vault: only the path is in state.
"""

from __future__ import annotations

import time
from typing import Optional

import grpc
from tf.iface import CreateContext, DeleteContext, ImportContext, PlanContext, ReadContext, Resource, State, UpdateContext
from tf.schema import Attribute, Schema
from tf.types import Map, String, Unknown
from tf.utils import Diagnostics

from provider.client import ApiError
from provider.common import (check_timeouts, client_of, delete_and_wait, get_for_import, name_taken, read_by_name,
                             wholly_known)
from provider.nested import NestedAttribute, Nesting, Number
from stratum.durations import format_duration, parse_duration
from stratum.v1 import pools_pb2 as p

SPEC_FIELDS = ("name", "driver", "region", "size", "image", "credentials", "driver_options", "min_nodes", "max_nodes",
               "tier", "labels", "prices", "idle_grace", "server")
IN_PLACE = {"min_nodes", "max_nodes", "prices", "idle_grace"}
COMPUTED = ("vms", "joined", "state", "cpu_cores", "memory_mb", "price_per_hour")
DEFAULT_TIMEOUT = "10m"
POLL_S = 0.5


def _grace(values: State) -> float:
    text = values.get("idle_grace")
    try:
        return parse_duration(text) if text else 0.0
    except ValueError:
        return 0.0  # reported at plan by check_grace


def to_spec(values: State) -> p.CloudPoolSpec:
    return p.CloudPoolSpec(
        name=values["name"], driver=values["driver"] or "", region=values.get("region") or "", size=values["size"] or "",
        image=values["image"] or "", credentials=values["credentials"] or "",
        driver_options={k: str(v) for k, v in (values.get("driver_options") or {}).items()},
        min_nodes=int(values.get("min_nodes") or 0), max_nodes=int(values.get("max_nodes") or 0),
        tier=values.get("tier") or "", labels=dict(values.get("labels") or {}),
        prices={k: float(v) for k, v in (values.get("prices") or {}).items()}, idle_grace_s=_grace(values),
        server=values.get("server") or "")


def _state(pool: p.CloudPool, prior: Optional[State]) -> State:
    prior = dict(prior or {})
    s = pool.spec
    if not prior.get("name"):  # import
        prior.update(name=s.name, driver=s.driver, region=s.region or None, size=s.size, image=s.image,
                     credentials=s.credentials, driver_options=dict(s.driver_options) or None,
                     min_nodes=s.min_nodes or None, max_nodes=s.max_nodes or None, tier=s.tier or None,
                     labels=dict(s.labels) or None, prices=dict(s.prices) or None,
                     idle_grace=format_duration(s.idle_grace_s) if s.idle_grace_s else None, server=s.server or None,
                     timeouts=None)
    prior.update(id=s.name, joined=pool.joined, state=pool.state, cpu_cores=pool.cpu_cores, memory_mb=pool.memory_mb,
                 price_per_hour=pool.price_per_hour,
                 vms=[{"name": v.name, "instance_id": v.instance_id or None, "state": v.state, "node_id": v.node_id or None}
                      for v in pool.vms])
    return prior


def _timeout(values: State, op: str) -> float:
    return parse_duration((values.get("timeouts") or {}).get(op) or DEFAULT_TIMEOUT)


def wait_requested(client, name: str, want: int, timeout_s: float) -> tuple[Optional[p.CloudPool], str]:
    """Poll until `want` VMs have instance ids; (pool, "") or (last seen, why not)."""
    deadline = time.monotonic() + timeout_s
    pool = None
    while True:
        pool = client.call("GetCloudPool", p.GetCloudPoolRequest(name=name), action=f"waiting for cloud pool {name!r}")
        if pool.state == "failed":
            return pool, pool.message
        if sum(1 for v in pool.vms if v.instance_id) >= want:
            return pool, ""
        if time.monotonic() >= deadline:
            asked = "; ".join(f"{v.name}: {v.message or v.state}" for v in pool.vms)
            return pool, f"{want} VMs not requested within {timeout_s:.0f}s ({asked or 'none recorded'})"
        time.sleep(POLL_S)


class CloudPoolResource(Resource):
    def __init__(self, provider):
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return "cloud_pool"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=1,
            attributes=[
                Attribute("id", String(), computed=True, description="Same as `name`."),
                Attribute("name", String(), required=True, requires_replace=True, description="Unique name of the pool."),
                Attribute("driver", String(), required=True, requires_replace=True, description="libcloud compute driver, e.g. `ec2`."),
                Attribute("region", String(), optional=True, requires_replace=True, description="The driver's region, e.g. `us-east-1`."),
                Attribute("size", String(), required=True, requires_replace=True, description="Size (instance type) of every VM."),
                Attribute("image", String(), required=True, requires_replace=True, description="Image id of every VM."),
                Attribute("credentials", String(), required=True, requires_replace=True,
                          description="Vault KV v2 path holding the cloud `key` and `secret`; the keys never enter state."),
                Attribute("driver_options", Map(String()), optional=True, requires_replace=True,
                          description="Passed to the libcloud driver: `host`, `port`, `secure`, `signature_version`."),
                Attribute("min_nodes", Number(), optional=True, description="VMs kept running (default 0)."),
                Attribute("max_nodes", Number(), optional=True, description="Most VMs (default `min_nodes`)."),
                Attribute("tier", String(), optional=True, requires_replace=True, description="Tier of the VMs' nodes (default `cloud`)."),
                Attribute("labels", Map(String()), optional=True, requires_replace=True, description="Labels of the VMs' nodes."),
                Attribute("prices", Map(Number()), optional=True, description="Price per hour by size, over libcloud's table."),
                Attribute("idle_grace", String(), optional=True,
                          description="A VM beyond `min_nodes` without replicas this long is terminated (default `5m`)."),
                Attribute("server", String(), optional=True, requires_replace=True,
                          description="host:port of the control plane as the VMs reach it (default: its listen address)."),
                NestedAttribute("timeouts", [
                    Attribute("create", String(), optional=True, description="Default `10m`."),
                    Attribute("delete", String(), optional=True, description="Default `10m`."),
                ], Nesting.SINGLE, optional=True, description="How long apply and destroy wait for the cloud."),
                NestedAttribute("vms", [
                    Attribute("name", String(), computed=True, description="Node name the VM joins as."),
                    Attribute("instance_id", String(), computed=True, description="The cloud's instance id."),
                    Attribute("state", String(), computed=True,
                              description="`requested`, `booting`, `joined`, `terminating` or `failed`."),
                    Attribute("node_id", String(), computed=True, description="Node id once joined."),
                ], Nesting.LIST, computed=True, description="The pool's VMs when last read."),
                Attribute("joined", Number(), computed=True, description="VMs joined as nodes."),
                Attribute("state", String(), computed=True, description="`ready`, `scaling`, `failed` or `deleting`."),
                Attribute("cpu_cores", Number(), computed=True, description="Cores of one VM of `size`."),
                Attribute("memory_mb", Number(), computed=True, description="MiB of one VM of `size`."),
                Attribute("price_per_hour", Number(), computed=True, description="Price of one VM-hour (0 if unknown)."),
            ],
        )

    def plan(self, ctx: PlanContext, current: Optional[State], planned: State) -> Optional[State]:
        diags = ctx.diagnostics
        if current is None:
            planned["id"] = planned["name"]
        elif not ctx.changed_fields & set(SPEC_FIELDS):
            return planned
        else:
            for k in COMPUTED:
                planned[k] = Unknown
        check_timeouts(diags, planned, ("create", "delete"))
        grace = planned.get("idle_grace")
        if isinstance(grace, str):
            try:
                parse_duration(grace)
            except ValueError as e:
                diags.add_error("Invalid idle_grace", str(e), path=["idle_grace"])
        values = {k: planned.get(k) for k in SPEC_FIELDS}
        client = getattr(self.provider, "client", None)
        if client is not None and wholly_known(values):
            try:
                client.call("ValidateCloudPool", to_spec(values), action=f"checking cloud pool {values['name']!r}",
                            attributes=SPEC_FIELDS, timeout=60)
            except ApiError as e:
                e.report(diags)
        return planned

    def _apply(self, diags: Diagnostics, planned: State, method: str, op: str) -> Optional[p.CloudPool]:
        client = client_of(self.provider, diags)
        if client is None:
            return None
        name = planned["name"]
        try:
            client.call(method, to_spec(planned), action=f"{op[:-1]}ing cloud pool {name!r}", attributes=SPEC_FIELDS,
                        timeout=60)
            pool, why = wait_requested(client, name, int(planned.get("min_nodes") or 0), _timeout(planned, "create"))
        except ApiError as e:
            if e.code == grpc.StatusCode.ALREADY_EXISTS:
                name_taken(diags, "cloud pool", name, "another spec")
            else:
                e.report(diags)
            return None
        if why:
            diags.add_error(f"Cloud pool {name!r} did not start its VMs", why)
            if op == "create":  # nothing half-created: give back what was rented
                self._delete(diags, name, _timeout(planned, "delete"), report=False)
            return None
        return pool

    def create(self, ctx: CreateContext, planned: State) -> Optional[State]:
        pool = self._apply(ctx.diagnostics, planned, "CreateCloudPool", "create")
        return None if pool is None else _state(pool, planned)

    def update(self, ctx: UpdateContext, current: State, planned: State) -> Optional[State]:
        pool = self._apply(ctx.diagnostics, planned, "UpdateCloudPool", "update")
        return current if pool is None else _state(pool, planned)

    def read(self, ctx: ReadContext, current: State) -> Optional[State]:
        return read_by_name(self.provider, ctx.diagnostics, current, "GetCloudPool", p.GetCloudPoolRequest, "cloud pool",
                            _state)

    def _delete(self, diags: Diagnostics, name: str, timeout_s: float, report: bool = True) -> bool:
        return delete_and_wait(self.provider, diags, delete=("DeleteCloudPool", p.DeleteCloudPoolRequest(name=name)),
                               get=("GetCloudPool", p.GetCloudPoolRequest(name=name)), what="cloud pool", name=name,
                               timeout_s=timeout_s, report=report, poll_s=POLL_S,
                               still=(f"Cloud pool {name!r} still has VMs",
                                      f"not all were terminated within {timeout_s:.0f}s; run terraform destroy again"))

    def delete(self, ctx: DeleteContext, current: State):
        name = current.get("name") or current.get("id")
        return None if self._delete(ctx.diagnostics, name, _timeout(current, "delete")) else current

    def import_(self, ctx: ImportContext, id: str) -> Optional[State]:
        pool = get_for_import(self.provider, ctx.diagnostics, id, "GetCloudPool", p.GetCloudPoolRequest, "cloud pool")
        return None if pool is None else _state(pool, None)
