"""Resource `stratum_join_token`: a token nodes enroll with (`stratum node --join-token`).

The name is the natural key: CreateJoinToken is idempotent on it, so a retried
apply never makes a second token, and `terraform import` takes the name.
"""

from __future__ import annotations

from typing import Any, Optional

import grpc
from tf.iface import CreateContext, DeleteContext, ImportContext, PlanContext, ReadContext, Resource, State, UpdateContext
from tf.schema import Attribute, Schema
from tf.types import Map, String, Unknown
from tf.utils import Diagnostics

from provider.client import ApiError
from provider.common import as_configured, client_of, delete_by_name, get_for_import, name_taken, read_by_name, rfc3339, wholly_known
from provider.nested import Number
from stratum.durations import parse_duration
from stratum.v1 import control_plane_pb2

# The user-settable attributes; the server's field violations name these.
SPEC_FIELDS = ("name", "tier", "labels", "ttl", "max_uses", "description")


def _spec(state: State) -> control_plane_pb2.JoinTokenSpec:
    max_uses = state.get("max_uses") or 0
    return control_plane_pb2.JoinTokenSpec(
        name=state["name"],
        tier=state.get("tier") or "",
        labels=state.get("labels") or {},
        ttl=state.get("ttl") or "",
        max_uses=int(max_uses),
        description=state.get("description") or "",
    )


def _same_duration(a: Any, b: Any) -> bool:
    try:
        return isinstance(a, str) and isinstance(b, str) and parse_duration(a) == parse_duration(b)
    except ValueError:
        return False


def _state(token: control_plane_pb2.JoinToken, prior: Optional[State]) -> State:
    """Server object -> state, in the form the configuration (prior state/plan) wrote it."""
    prior = prior or {}
    spec = token.spec
    ttl = as_configured(spec.ttl, prior.get("ttl"), "")
    if _same_duration(ttl, prior.get("ttl")):
        ttl = prior["ttl"]  # "1d" and "24h" are the same ttl; keep what the user wrote
    return {
        "id": spec.name,
        "name": spec.name,
        "tier": spec.tier,
        "labels": as_configured(dict(spec.labels), prior.get("labels"), {}),
        "ttl": ttl,
        "max_uses": as_configured(spec.max_uses, prior.get("max_uses"), 0),
        "description": as_configured(spec.description, prior.get("description"), ""),
        "token": token.token,
        "uses": token.uses,
        "expires_at": rfc3339(token.expires_at) if token.HasField("expires_at") else None,
    }


class JoinTokenResource(Resource):
    def __init__(self, provider):
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return "join_token"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=0,
            description="A join token: the secret a new node presents to enroll with the control plane.",
            attributes=[
                Attribute("id", String(), computed=True, description="Same as `name`."),
                Attribute("name", String(), required=True, requires_replace=True, description="Unique name (lowercase letters, digits, `-`). Changing it replaces the token."),
                Attribute("tier", String(), required=True, description="Tier given to nodes enrolling with the token: `edge`, `fog` or `cloud`."),
                Attribute("labels", Map(String()), optional=True, description="Labels given to nodes enrolling with the token."),
                Attribute("ttl", String(), optional=True, description="Lifetime from creation, e.g. `24h`; unset for no expiry."),
                Attribute("max_uses", Number(), optional=True, description="How many nodes may enroll with it; unset or `0` for unlimited."),
                Attribute("description", String(), optional=True, description="Free text for operators."),
                Attribute("token", String(), computed=True, sensitive=True, description="The secret to pass to `stratum node --join-token`."),
                Attribute("uses", Number(), computed=True, description="Enrollments so far."),
                Attribute("expires_at", String(), computed=True, description="RFC 3339 expiry time, or null when the token does not expire."),
            ],
        )

    # ---- plan ----

    def plan(self, ctx: PlanContext, current: Optional[State], planned: State) -> Optional[State]:
        if current is None:
            planned["id"] = planned["name"]  # known at plan time: the name is the id
        elif "ttl" in ctx.changed_fields:
            planned["expires_at"] = Unknown  # counted from creation with the new ttl
        if current is None or ctx.changed_fields & set(SPEC_FIELDS):
            self._check_with_server(ctx.diagnostics, planned)
        return planned

    def _check_with_server(self, diags: Diagnostics, planned: State) -> None:
        """ValidateJoinToken: an unknown tier or malformed label fails `terraform plan`."""
        client = getattr(self.provider, "client", None)
        spec_values = {k: planned.get(k) for k in SPEC_FIELDS}
        if client is None or not wholly_known(spec_values):
            return  # unknown config: checked again when known, and by the server on apply
        max_uses = spec_values["max_uses"]
        if max_uses is not None and (max_uses != int(max_uses) or not -(2**31) <= max_uses < 2**31):
            # The API's int32 cannot carry it: say so here, and let the server judge the rest.
            diags.add_error("Invalid max_uses", f"max_uses = {max_uses}: must be a whole number, 0 (unlimited) or more.", path=["max_uses"])
            spec_values["max_uses"] = 0
        try:
            client.call("ValidateJoinToken", _spec(spec_values), action=f"checking join token {planned['name']!r}", attributes=SPEC_FIELDS)
        except ApiError as e:
            e.report(diags)

    # ---- CRUD ----

    def create(self, ctx: CreateContext, planned: State) -> Optional[State]:
        client = client_of(self.provider, ctx.diagnostics)
        if client is None:
            return None
        try:
            token = client.call("CreateJoinToken", _spec(planned), action=f"creating join token {planned['name']!r}", attributes=SPEC_FIELDS)
        except ApiError as e:
            if e.code == grpc.StatusCode.ALREADY_EXISTS:
                name_taken(ctx.diagnostics, "join token", planned["name"], "other settings")
            else:
                e.report(ctx.diagnostics)
            return None
        return _state(token, planned)

    def read(self, ctx: ReadContext, current: State) -> Optional[State]:
        return read_by_name(self.provider, ctx.diagnostics, current, "GetJoinToken", control_plane_pb2.GetJoinTokenRequest,
                            "join token", _state)

    def update(self, ctx: UpdateContext, current: State, planned: State) -> Optional[State]:
        client = client_of(self.provider, ctx.diagnostics)
        if client is None:
            return current
        try:
            token = client.call("UpdateJoinToken", _spec(planned), action=f"updating join token {planned['name']!r}", attributes=SPEC_FIELDS)
        except ApiError as e:
            e.report(ctx.diagnostics)
            return current
        return _state(token, planned)

    def delete(self, ctx: DeleteContext, current: State):
        return delete_by_name(self.provider, ctx.diagnostics, current, "DeleteJoinToken", control_plane_pb2.DeleteJoinTokenRequest,
                              "join token")

    def import_(self, ctx: ImportContext, id: str) -> Optional[State]:
        token = get_for_import(self.provider, ctx.diagnostics, id, "GetJoinToken", control_plane_pb2.GetJoinTokenRequest, "join token")
        return None if token is None else _state(token, None)
