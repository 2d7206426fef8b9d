"""The provider's client of stratum.v1.ControlPlane: TLS, bearer token, retries, error mapping."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Iterable, Optional

import grpc

from provider.errors import register_secret, to_diagnostics
from stratum import grpc_util
from stratum.v1 import control_plane_pb2_grpc

log = logging.getLogger("stratum.provider.client")

# Every ControlPlane call is idempotent (house rule), so retrying UNAVAILABLE is safe;
# a few short tries ride out a control plane restart without hiding a dead one for long.
RETRY_DELAYS = (0.5, 1.0, 2.0)


def _default_timeout() -> float:
    """Per-call deadline in seconds; STRATUM_PROVIDER_TIMEOUT overrides (a bad value is ignored, not fatal)."""
    try:
        return max(1.0, float(os.environ.get("STRATUM_PROVIDER_TIMEOUT", "30")))
    except ValueError:
        return 30.0


DEFAULT_TIMEOUT_S = _default_timeout()


class ApiError(Exception):
    """A failed call, already turned into Terraform diagnostics."""

    def __init__(self, code: grpc.StatusCode, diagnostics: list):
        super().__init__(code.name)
        self.code = code
        self.diagnostics = diagnostics

    def report(self, diags) -> None:
        """Append to a tf.utils.Diagnostics."""
        diags.diagnostics.extend(self.diagnostics)


class Client:
    def __init__(self, endpoint: str | list[str], token: str, ca_pem: bytes, timeout_s: float = DEFAULT_TIMEOUT_S):
        register_secret(token)
        # Several control planes (high availability): each serves the whole API, so an unavailable
        # one is left for the next in the list.
        self.endpoints = [endpoint] if isinstance(endpoint, str) else list(endpoint)
        self._token, self._ca_pem = token, ca_pem
        self._timeout_s = timeout_s
        # Terraform calls the provider from several goroutines at once, so calls share this client
        # from several threads: one channel per endpoint, made on first use and closed only by
        # close(), since closing one under another thread's call cancels that call ("Channel closed!").
        self._lock = threading.Lock()
        self._stubs: dict[int, control_plane_pb2_grpc.ControlPlaneStub] = {}
        self._channels: list[grpc.Channel] = []
        self._current = 0

    @property
    def endpoint(self) -> str:
        return self.endpoints[self._current]

    def _stub(self, i: int) -> control_plane_pb2_grpc.ControlPlaneStub:
        with self._lock:
            if i not in self._stubs:
                channel = grpc_util.secure_channel(self.endpoints[i], self._ca_pem)
                self._channels.append(channel)
                self._stubs[i] = control_plane_pb2_grpc.ControlPlaneStub(channel)
            return self._stubs[i]

    def _move_on(self, failed: int) -> None:
        """The next control plane after the one that failed, unless another call has moved on already."""
        with self._lock:
            if self._current == failed:
                self._current = (failed + 1) % len(self.endpoints)

    def call(self, method: str, request: Any, *, action: str, attributes: Optional[Iterable[str]] = None,
             timeout: Optional[float] = None) -> Any:
        """Call ControlPlane.<method>; ApiError with diagnostics on failure.

        `action` words the diagnostics ("creating join token \"x\""); `attributes`
        are the attribute names INVALID_ARGUMENT field paths may point at; `timeout`
        (seconds) lengthens the per-call deadline for calls that do long work. For a
        client-streaming method, `request` is a function returning a fresh iterator of
        messages (called again on each try).
        """
        metadata = grpc_util.bearer(self._token) if self._token else None
        tries = (len(RETRY_DELAYS) + 1) * len(self.endpoints)
        for attempt in range(tries):
            used = self._current
            rpc = getattr(self._stub(used), method)
            try:
                return rpc(request() if callable(request) else request, timeout=max(timeout or 0, self._timeout_s), metadata=metadata)
            except grpc.RpcError as err:
                code = err.code()
                # A failed TLS handshake (wrong ca_cert) is also UNAVAILABLE, but retrying cannot fix it.
                tls = "handshake" in (err.details() or "").lower()
                if code == grpc.StatusCode.UNAVAILABLE and not tls and attempt < tries - 1:
                    log.info("control plane unavailable, retrying", extra={"fields": {
                        "method": method, "attempt": attempt + 1, "endpoint": self.endpoints[used]}})
                    self._move_on(used)
                    time.sleep(RETRY_DELAYS[min(attempt // len(self.endpoints), len(RETRY_DELAYS) - 1)])
                    continue
                diags = to_diagnostics(err, endpoint=self.endpoints[used], action=action, token_given=bool(self._token), attributes=attributes)
                raise ApiError(code, diags) from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            channels, self._channels, self._stubs = self._channels, [], {}
        for channel in channels:
            channel.close()
