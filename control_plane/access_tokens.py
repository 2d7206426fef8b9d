"""Access tokens: scoped bearer tokens besides the admin token, for people and tools that only look.

    tokens = AccessTokens(store)
    token, secret_text = tokens.create(AccessTokenSpec(name="grafana", scope="read", ttl="30d"))
    tokens.authenticate("sta1.at-0123456789ab.<secret>")   # -> "read", or None (unknown, expired, wrong)
    allowed("read", "/stratum.v1.ControlPlane/GetService")  # True; CreateService: False

The secret is shown once (CreateAccessToken's answer); the store keeps its sha256, so a copy of
the database lets nobody in. What a scope may call is decided from the method's name here, for
the gRPC interceptor and the dashboard alike.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time

from control_plane.errors import AlreadyExists, InvalidArgument, NotFound
from control_plane.store import Conflict, Store
from stratum.durations import parse_duration
from stratum.timestamps import set_timestamp
from stratum.validation import check_duration, check_name, check_text, shown
from stratum.v1 import access_pb2 as ac

PREFIX = "sta1."
SCOPES = ("read",)
# Methods a read token may call: those that change nothing. Everything else (Create*, Update*,
# Delete*, Upload*, Retrain*, Pin*, Drain*, RunAppNow) is the admin's, and so are the reads that
# answer with secrets: join tokens carry theirs, and the access tokens are the admin's business.
_READ = re.compile(r"^(Get|List|Validate|Stream)[A-Z]\w*$|^PlaceWhatIf$")
_SECRET_READS = frozenset({"GetJoinToken", "ListJoinTokens", "ListAccessTokens"})
_TOKEN = re.compile(r"^sta1\.(at-[0-9a-f]{12})\.([0-9a-f]{64})$")
CACHE_S = 5.0  # a deleted token stops working within this long on every control plane


def allowed(scope: str, method: str) -> bool:
    """May a token of `scope` call `method` (a full gRPC path or a bare method name)?"""
    name = method.rpartition("/")[2]
    if scope == "admin":
        return True
    if scope == "read":
        return bool(_READ.match(name)) and name not in _SECRET_READS
    return False


def validate_spec(spec: ac.AccessTokenSpec) -> list[tuple[str, str]]:
    problems = check_name(spec.name) + check_duration(spec.ttl, "ttl") + check_text(spec.description, "description")
    if spec.scope not in SCOPES:
        problems.append(("scope", f"unknown scope {shown(spec.scope)}: expected {' or '.join(SCOPES)}"))
    return problems


def _sha(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def to_proto(doc: dict, token_text: str = "") -> ac.AccessToken:
    out = ac.AccessToken(spec=ac.AccessTokenSpec(name=doc["name"], scope=doc["scope"], ttl=doc.get("ttl", ""),
                                                 description=doc.get("description", "")),
                         id=doc["id"], token=token_text)
    set_timestamp(out.created_at, doc["created_at"])
    if doc.get("expires_at"):
        set_timestamp(out.expires_at, doc["expires_at"])
    return out


class AccessTokens:
    def __init__(self, store: Store):
        self.store = store
        self._cache: dict[str, tuple[float, dict | None, str]] = {}  # id -> (read at, doc, sha256)
        self._lock = threading.Lock()

    def create(self, spec: ac.AccessTokenSpec, now: float | None = None) -> ac.AccessToken:
        problems = validate_spec(spec)
        if problems:
            raise InvalidArgument(problems)
        now = time.time() if now is None else now
        token_id, secret = "at-" + secrets.token_hex(6), secrets.token_hex(32)
        doc = {"id": token_id, "name": spec.name, "scope": spec.scope, "ttl": spec.ttl, "description": spec.description,
               "created_at": now, "expires_at": now + parse_duration(spec.ttl) if spec.ttl else None}
        try:
            self.store.insert_access_token(token_id, spec.name, doc, _sha(secret), now, doc["expires_at"])
        except Conflict:
            # Not idempotent on purpose: the secret of the existing token cannot be shown again.
            raise AlreadyExists(f"access token {shown(spec.name)} already exists; delete it to issue a new one") from None
        return to_proto(doc, f"{PREFIX}{token_id}.{secret}")

    def list(self) -> ac.ListAccessTokensResponse:
        return ac.ListAccessTokensResponse(tokens=[to_proto(d) for d in self.store.list_access_tokens()])

    def delete(self, name: str) -> None:
        self.store.delete_access_token(name)
        with self._lock:
            self._cache.clear()

    def get_by_name(self, name: str) -> ac.AccessToken:
        for d in self.store.list_access_tokens():
            if d["name"] == name:
                return to_proto(d)
        raise NotFound(f"access token {shown(name)} not found")

    def authenticate(self, text: str, now: float | None = None) -> dict | None:
        """The token's document when `text` is a live token of this store, else None."""
        m = _TOKEN.match(text.strip())
        if not m:
            return None
        token_id, secret = m.groups()
        now = time.time() if now is None else now
        with self._lock:
            hit = self._cache.get(token_id)
        if hit is None or now - hit[0] > CACHE_S:
            found = self.store.access_token(token_id)
            hit = (now, *(found if found else (None, "")))
            with self._lock:
                if len(self._cache) > 10_000:  # guessed ids must not grow it without bound
                    self._cache.clear()
                self._cache[token_id] = hit
        _, doc, digest = hit
        if doc is None or not hmac.compare_digest(digest, _sha(secret)):
            return None
        if doc.get("expires_at") and now >= doc["expires_at"]:
            return None
        return doc
