"""Dashboard logins: server-side sessions behind an opaque cookie.

    sessions = Sessions(ttl_s=8 * 3600, admin_token=..., access_tokens=AccessTokens(store))
    s = sessions.login(token_typed_by_the_user)        # Session, or None: not a token of this control plane
    sessions.get(cookie_value)                           # (Session | None, "expired" | "")
    sessions.logout(cookie_value)

The cookie carries a random id only. The token the user typed stays on the server, in the session,
and every API call the dashboard makes for this user carries it: the API's own checks (a read
token may not act) apply to the dashboard as to any client. Each session has its CSRF token,
which every form that changes something must send back. Sessions live in this process's memory
and end with it (a restarted control plane asks everyone to log in again).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass

MAX_SESSIONS = 10_000  # a flood of logins evicts the oldest, never grows memory without bound
COOKIE = "stratum_session"


@dataclass
class Session:
    id: str
    role: str  # "admin" or an access token's scope ("read")
    who: str  # "admin", or the access token's name
    token: str  # the bearer token API calls carry (never sent to the browser)
    csrf: str
    expires_at: float

    @property
    def can_act(self) -> bool:
        return self.role == "admin"


class Sessions:
    def __init__(self, ttl_s: float, admin_token: str, access_tokens=None):
        self.ttl_s = ttl_s
        self._admin = admin_token.encode()
        self._access = access_tokens
        self._by_id: dict[str, Session] = {}
        self._expired: dict[str, float] = {}  # ids that expired, to say so once instead of "log in"
        self._lock = threading.Lock()

    def login(self, token: str, now: float | None = None) -> Session | None:
        now = time.time() if now is None else now
        token = token.strip()
        if not token or len(token) > 512:
            return None
        expires = now + self.ttl_s
        if hmac.compare_digest(token.encode(), self._admin):
            role, who = "admin", "admin"
        else:
            doc = self._access.authenticate(token, now) if self._access is not None else None
            if doc is None:
                return None
            role, who = doc["scope"], doc["name"]
            if doc.get("expires_at"):  # a session ends no later than its token
                expires = min(expires, doc["expires_at"])
        s = Session(secrets.token_urlsafe(32), role, who, token, secrets.token_urlsafe(32), expires)
        with self._lock:
            if len(self._by_id) >= MAX_SESSIONS:
                oldest = min(self._by_id.values(), key=lambda x: x.expires_at)
                del self._by_id[oldest.id]
            self._by_id[s.id] = s
        return s

    def get(self, sid: str | None, now: float | None = None) -> tuple[Session | None, str]:
        """The live session for a cookie value, and "expired" when it was one that has run out."""
        if not sid:
            return None, ""
        now = time.time() if now is None else now
        with self._lock:
            s = self._by_id.get(sid)
            if s is not None and now >= s.expires_at:
                del self._by_id[sid]
                self._expired[sid] = now
                if len(self._expired) > MAX_SESSIONS:
                    self._expired.pop(next(iter(self._expired)))
                s = None
            if s is None:
                return None, "expired" if sid in self._expired else ""
        return s, ""

    def logout(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)

    @staticmethod
    def csrf_ok(session: Session, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(session.csrf.encode(), str(sent).encode())
