"""Small helpers shared by the resources and data sources."""

from __future__ import annotations

from typing import Any, Optional

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from tf.types import Unknown
from tf.utils import Diagnostics

from provider.client import ApiError, Client


def client_of(provider, diags: Diagnostics) -> Optional[Client]:
    """The configured client, or None with an error saying why there is none."""
    client = getattr(provider, "client", None)
    if client is None:
        diags.add_error(
            "The Stratum provider is not configured",
            "Its endpoint, token or ca_cert is not known yet (it depends on values known only after apply) "
            "or was invalid. Give the provider values known at plan time.",
        )
    return client


def wholly_known(value: Any) -> bool:
    """False when an Unknown hides anywhere in value (e.g. a label from another resource)."""
    if value is Unknown:
        return False
    if isinstance(value, dict):
        return all(wholly_known(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(wholly_known(v) for v in value)
    return True


def rfc3339(ts: Timestamp) -> str:
    return ts.ToJsonString()


def as_configured(server_value: Any, prior: Any, zero: Any) -> Any:
    """The server's value in the form the configuration wrote it.

    The API has no null: an unset ttl is "", no labels is {}, unlimited uses is 0.
    Terraform compares state with configuration, so report the zero value as
    null unless the configuration (the prior state) spelled it out.
    """
    if server_value == zero:
        return zero if prior == zero else None
    return server_value


def node_summary(node) -> dict[str, Any]:
    """The fields of a stratum.v1.Node both node data sources export."""
    caps = node.capabilities
    return {
        "id": node.id,
        "name": node.name,
        "tier": node.tier,
        "labels": dict(node.labels),
        "state": node.state,
        "cpu_cores": caps.cpu_cores,
        "memory_mb": caps.memory_mb,
        "arch": caps.arch,
        "gpus": len(caps.gpus),
        "addresses": list(node.addresses),
    }


def delete_by_name(provider, diags: Diagnostics, current: dict, method: str, request_type, what: str):
    """Delete the object named in `current`; None once it is gone, `current` while it may still exist."""
    client = client_of(provider, diags)
    if client is None:
        return current
    name = current.get("name") or current.get("id")
    try:
        client.call(method, request_type(name=name), action=f"deleting {what} {name!r}")
    except ApiError as e:
        if e.code != grpc.StatusCode.NOT_FOUND:  # already gone is what we wanted
            e.report(diags)
            return current  # still there: keep it in state
    return None


def get_for_import(provider, diags: Diagnostics, name: str, method: str, request_type, what: str):
    """The server object `terraform import` asked for by name, or None with a diagnostic."""
    client = client_of(provider, diags)
    if client is None:
        return None
    try:
        return client.call(method, request_type(name=name), action=f"importing {what} {name!r}")
    except ApiError as e:
        if e.code == grpc.StatusCode.NOT_FOUND:
            diags.add_error(f"Cannot import {what}", f"The control plane has no {what} named {name!r}. Import takes the {what}'s name.")
        else:
            e.report(diags)
        return None


def read_by_name(provider, diags: Diagnostics, current: dict, method: str, request_type, what: str, to_state):
    """Refresh `current` from the server: new state, None when it was deleted outside Terraform
    (so the next plan recreates it), or `current` unchanged when the server could not answer."""
    client = client_of(provider, diags)
    if client is None:
        return current
    name = current.get("name") or current.get("id")
    try:
        obj = client.call(method, request_type(name=name), action=f"reading {what} {name!r}")
    except ApiError as e:
        if e.code == grpc.StatusCode.NOT_FOUND:
            return None
        e.report(diags)
        return current
    return to_state(obj, current)


def name_taken(diags: Diagnostics, what: str, name: str, differs: str) -> None:
    """The diagnostic for ALREADY_EXISTS on create: the natural key is in use with other arguments."""
    diags.add_error(
        f"{what[0].upper()}{what[1:]} name taken",
        f"A {what} named {name!r} already exists with {differs}. Import it (terraform import <address> {name}) or choose another name.",
        path=["name"],
    )


def check_timeouts(diags: Diagnostics, planned: dict, operations: tuple[str, ...]) -> None:
    """Plan-time check of a `timeouts = { create = "30m", ... }` attribute: each a duration."""
    from stratum.durations import parse_duration

    for op in operations:
        t = (planned.get("timeouts") or {}).get(op)
        if isinstance(t, str):
            try:
                parse_duration(t)
            except ValueError as e:
                diags.add_error("Invalid timeout", str(e), path=["timeouts", op])


def delete_and_wait(provider, diags: Diagnostics, *, delete: tuple, get: tuple, what: str, name: str, timeout_s: float,
                    still: tuple[str, str], report: bool = True, poll_s: float = 0.5) -> bool:
    """Call a Delete RPC, then poll its Get RPC until NOT_FOUND (the control plane finished the delete:
    processes stopped, VMs terminated). delete/get: (method, request); still: the error's summary and
    detail when `timeout_s` passes first. True once it is gone."""
    import time

    import grpc

    from provider.client import ApiError

    client = client_of(provider, diags)
    if client is None:
        return False
    deadline = time.monotonic() + timeout_s
    try:
        client.call(delete[0], delete[1], action=f"deleting {what} {name!r}")
        while time.monotonic() < deadline:
            try:
                client.call(get[0], get[1], action=f"waiting for {what} {name!r} to be deleted")
            except ApiError as e:
                if e.code == grpc.StatusCode.NOT_FOUND:
                    return True
                raise
            time.sleep(poll_s)
    except ApiError as e:
        if report:
            e.report(diags)
        return False
    if report:
        diags.add_error(*still)
    return False
