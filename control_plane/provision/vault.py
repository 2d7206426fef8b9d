"""Cloud credentials from Vault (or OpenBao, which speaks its API), read with hvac.

    vault = Vault.from_env()                      # VAULT_ADDR + VAULT_TOKEN, or VAULT_ROLE_ID + VAULT_SECRET_ID
    key, secret = vault.credentials("secret/stratum/aws")   # a KV v2 path holding `key` and `secret`

The control plane reads the keys when it needs a cloud driver and keeps them in memory only:
they never reach the store, Terraform state, logs or error messages (a `VaultError` names the
path and the Vault address, never a value).

Tokens: a token about to expire (within `renew_margin_s`) is renewed before it is used; one that
cannot be renewed any more is replaced by a new AppRole login when role and secret ids are known.
`keep_alive()` does the same check, so a long idle control plane keeps its token too.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from stratum.logs import event

# hvac and requests are imported when a Vault is first used: a control plane without cloud pools
# or secret_env never loads them.

log = logging.getLogger("stratum.provision.vault")

DEFAULT_MOUNT = "secret"


class VaultError(Exception):
    """Reading credentials failed; the message says why and names the path, never a secret."""

    def __init__(self, message: str, *, path: str = "", kind: str = "error"):
        super().__init__(message)
        self.path, self.kind = path, kind  # kind: missing | denied | unreachable | invalid | auth


def split_path(path: str) -> tuple[str, str]:
    """"secret/stratum/aws" -> ("secret", "stratum/aws"): the KV v2 mount, then the path inside it."""
    parts = [p for p in path.strip().strip("/").split("/") if p]
    if len(parts) < 2:
        raise VaultError(f"credentials = {path!r}: give a KV v2 path with its mount, e.g. \"secret/stratum/aws\"",
                         path=path, kind="invalid")
    if parts[1] == "data":  # the HTTP API form secret/data/x: the mount is still the first part
        parts = [parts[0], *parts[2:]]
    return parts[0], "/".join(parts[1:])


class Vault:
    def __init__(self, addr: str, *, token: str | None = None, role_id: str | None = None,
                 secret_id: str | None = None, ca_cert: str | None = None, timeout: float = 10.0,
                 renew_margin_s: float = 60.0):
        if not addr:
            raise VaultError("no Vault address: set VAULT_ADDR for the control plane", kind="invalid")
        if not token and not (role_id and secret_id):
            raise VaultError("no Vault credentials: set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID",
                             kind="invalid")
        self.addr = addr.rstrip("/")
        self._role_id, self._secret_id = role_id, secret_id
        import hvac

        self.client = hvac.Client(url=self.addr, token=token, verify=ca_cert or True, timeout=timeout)
        self.renew_margin_s = renew_margin_s
        self._expires_at: float | None = None  # monotonic; None: not known yet (looked up on first use)
        self._renewable = True
        self._lock = threading.Lock()
        self.renewals = 0
        self.logins = 0

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Vault":
        env = os.environ if env is None else env
        return cls(env.get("VAULT_ADDR", ""), token=env.get("VAULT_TOKEN") or None,
                   role_id=env.get("VAULT_ROLE_ID") or None, secret_id=env.get("VAULT_SECRET_ID") or None,
                   ca_cert=env.get("VAULT_CACERT") or None)

    # -- the token ----------------------------------------------------------------------------
    def _call(self, what: str, fn, path: str = ""):
        import hvac.exceptions
        import requests

        try:
            return fn()
        except requests.exceptions.RequestException as e:
            raise VaultError(f"Vault at {self.addr} is unreachable while {what}: {type(e).__name__}",
                             path=path, kind="unreachable") from None
        except hvac.exceptions.Forbidden:
            raise VaultError(f"Vault denied {what}: the control plane's token has no policy allowing it",
                             path=path, kind="denied") from None
        except hvac.exceptions.InvalidPath:
            raise VaultError(f"nothing found in Vault while {what}", path=path, kind="missing") from None
        except hvac.exceptions.Unauthorized:
            raise VaultError(f"Vault rejected the control plane's credentials while {what}", path=path,
                             kind="auth") from None
        except hvac.exceptions.VaultError as e:
            # hvac puts the server's errors in the message; they name paths, not secret values
            raise VaultError(f"Vault error while {what}: {type(e).__name__}: {str(e).splitlines()[0][:200]}",
                             path=path, kind="error") from None

    def _login(self) -> None:
        res = self._call("logging in with AppRole",
                         lambda: self.client.auth.approle.login(role_id=self._role_id, secret_id=self._secret_id))
        auth = res["auth"]
        self._set_expiry(auth.get("lease_duration") or 0, auth.get("renewable", False))
        self.logins += 1
        event(log, "vault login", method="approle", ttl_s=auth.get("lease_duration"))

    def _set_expiry(self, ttl: float, renewable: bool) -> None:
        self._expires_at = time.monotonic() + ttl if ttl else float("inf")  # 0: a root token that never expires
        self._renewable = bool(renewable)

    def _ensure_token(self) -> None:
        with self._lock:
            if not self.client.token:
                self._login()
                return
            if self._expires_at is None:
                data = self._call("looking up its own token", lambda: self.client.auth.token.lookup_self())["data"]
                self._set_expiry(data.get("ttl") or 0, data.get("renewable", False))
            if self._expires_at - time.monotonic() > self.renew_margin_s:
                return
            if self._renewable:
                try:
                    res = self._call("renewing its token", lambda: self.client.auth.token.renew_self())
                    auth = res["auth"]
                    self._set_expiry(auth.get("lease_duration") or 0, auth.get("renewable", False))
                    self.renewals += 1
                    event(log, "vault token renewed", ttl_s=auth.get("lease_duration"))
                    if self._expires_at - time.monotonic() > self.renew_margin_s:
                        return
                except VaultError as e:
                    if not (self._role_id and self._secret_id):
                        raise
                    event(log, "vault renewal failed, logging in again", level=logging.WARNING, error=str(e))
            if self._role_id and self._secret_id:  # at its max TTL: a fresh login
                self._login()

    def keep_alive(self) -> None:
        """Renew the token if it is close to expiry (call now and then)."""
        self._ensure_token()

    # -- reading ------------------------------------------------------------------------------
    def read(self, path: str) -> dict:
        """The data of a KV v2 secret."""
        mount, inner = split_path(path)
        self._ensure_token()
        res = self._call(f"reading {path!r}", lambda: self.client.secrets.kv.v2.read_secret_version(
            path=inner, mount_point=mount, raise_on_deleted_version=True), path=path)
        return dict(res["data"]["data"] or {})

    def credentials(self, path: str) -> tuple[str, str]:
        """(key, secret) from a KV v2 secret with those two fields."""
        data = self.read(path)
        missing = [k for k in ("key", "secret") if not isinstance(data.get(k), str) or not data.get(k)]
        if missing:
            raise VaultError(f"the secret at {path!r} has no {' or '.join(repr(k) for k in missing)} field "
                             f"(it must hold the cloud key as `key` and the secret key as `secret`)",
                             path=path, kind="invalid")
        return data["key"], data["secret"]
