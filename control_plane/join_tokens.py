"""Join tokens: scoped, expiring, counted credentials that let a device enroll.

Pure rules (validation, what counts as "the same" token, expiry) live here
beside the small amount of store I/O they need.
"""

from __future__ import annotations

import hmac
import time

from control_plane.errors import AlreadyExists, InvalidArgument, NotFound, Unauthenticated
from control_plane.store import Conflict, JoinTokenRow, Store
from stratum import tokens
from stratum.durations import format_duration, parse_duration
from stratum.timestamps import set_timestamp
from stratum.validation import check_duration, check_labels, check_name, check_number, check_tier, shown
from stratum.v1 import control_plane_pb2 as cp

MAX_USES = 1_000_000  # enrollments per token; 0 is unlimited


def validate_spec(spec: cp.JoinTokenSpec) -> list[tuple[str, str]]:
    problems = check_name(spec.name) + check_tier(spec.tier) + check_labels(dict(spec.labels)) + check_duration(spec.ttl, "ttl")
    problems += check_number(spec.max_uses, "max_uses", 0, MAX_USES, integer=True, hint="0 for unlimited")
    if len(spec.description) > 1024:
        problems.append(("description", "description is longer than 1024 characters"))
    return problems


def _expires_at(created_at: float, ttl: str) -> float | None:
    return created_at + parse_duration(ttl) if ttl else None


def same_spec(row: JoinTokenRow, spec: cp.JoinTokenSpec) -> bool:
    return (row.tier, row.labels, row.ttl, row.max_uses, row.description) == (
        spec.tier, dict(spec.labels), spec.ttl, spec.max_uses, spec.description)


class JoinTokens:
    def __init__(self, store: Store, ca_fingerprint: str):
        self.store = store
        self.ca_fingerprint = ca_fingerprint

    def secret_text(self, row: JoinTokenRow) -> str:
        return tokens.format_join_token(self.ca_fingerprint, row.id, row.secret)

    def create(self, spec: cp.JoinTokenSpec, now: float | None = None) -> JoinTokenRow:
        """Create, or return the existing token when name and spec match (idempotent retry)."""
        problems = validate_spec(spec)
        if problems:
            raise InvalidArgument(problems)
        existing = self.store.get_join_token(name=spec.name)
        if existing is None:
            now = time.time() if now is None else now
            row = JoinTokenRow(tokens.new_token_id(), spec.name, tokens.new_secret(), spec.tier, dict(spec.labels),
                               spec.ttl, spec.max_uses, 0, spec.description, now, _expires_at(now, spec.ttl))
            try:
                self.store.insert_join_token(row)
                return row
            except Conflict:  # a concurrent create of the same name won the race
                existing = self.store.get_join_token(name=spec.name)
        if existing is not None and same_spec(existing, spec):
            return existing
        raise AlreadyExists(f"join token {shown(spec.name)} already exists with a different spec")

    def get(self, name: str) -> JoinTokenRow:
        row = self.store.get_join_token(name=name)
        if row is None:
            raise NotFound(f"join token {shown(name)} not found")
        return row

    def update(self, spec: cp.JoinTokenSpec) -> JoinTokenRow:
        problems = validate_spec(spec)
        if problems:
            raise InvalidArgument(problems)
        row = self.get(spec.name)
        row.tier, row.labels, row.ttl, row.max_uses, row.description = (
            spec.tier, dict(spec.labels), spec.ttl, spec.max_uses, spec.description)
        row.expires_at = _expires_at(row.created_at, spec.ttl)
        self.store.update_join_token(row)
        return row

    def delete(self, name: str) -> None:
        self.store.delete_join_token(name)

    def authenticate(self, text: str, now: float) -> JoinTokenRow:
        """The token row for a presented secret, if it may enroll one more node now."""
        try:
            parts = tokens.parse_join_token(text)
        except ValueError as e:
            raise Unauthenticated(str(e)) from None
        row = self.store.get_join_token(token_id=parts.token_id)
        if row is None or not hmac.compare_digest(row.secret, parts.secret):
            raise Unauthenticated("join token not recognised: it is wrong, or it was deleted")
        if parts.ca_fingerprint != self.ca_fingerprint:
            raise Unauthenticated("join token was issued by another control plane (CA fingerprint differs)")
        if row.expires_at is not None and now >= row.expires_at:
            raise Unauthenticated(f"join token {row.name!r} expired {format_duration(now - row.expires_at)} ago")
        if row.max_uses and row.uses >= row.max_uses:
            raise Unauthenticated(f"join token {row.name!r} is used up ({row.uses} of {row.max_uses} uses)")
        return row


def to_proto(row: JoinTokenRow, secret_text: str) -> cp.JoinToken:
    out = cp.JoinToken(
        spec=cp.JoinTokenSpec(name=row.name, tier=row.tier, labels=row.labels, ttl=row.ttl,
                              max_uses=row.max_uses, description=row.description),
        id=row.id, token=secret_text, uses=row.uses)
    # Clamped: a row stored before ttl had a bound (or written by hand) must not fail every list.
    set_timestamp(out.created_at, row.created_at)
    if row.expires_at is not None:
        set_timestamp(out.expires_at, row.expires_at)
    return out
