"""The provider's client of stratum.v1.ControlPlane: TLS, bearer token, retries, error mapping."""

from __future__ import annotations

import logging
import os
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
    def __init__(self, endpoint: str, token: str, ca_pem: bytes, timeout_s: float = DEFAULT_TIMEOUT_S):
        register_secret(token)
        self.endpoint = endpoint
        self._token = token
        self._timeout_s = timeout_s
        self._channel = grpc_util.secure_channel(endpoint, ca_pem)
        self._stub = control_plane_pb2_grpc.ControlPlaneStub(self._channel)

    def call(self, method: str, request: Any, *, action: str, attributes: Optional[Iterable[str]] = None,
             timeout: Optional[float] = None) -> Any:
        """Call ControlPlane.<method>; ApiError with diagnostics on failure.

        `action` words the diagnostics ("creating join token \"x\""); `attributes`
        are the attribute names INVALID_ARGUMENT field paths may point at; `timeout`
        (seconds) lengthens the per-call deadline for calls that do long work. For a
        client-streaming method, `request` is a function returning a fresh iterator of
        messages (called again on each try).
        """
        rpc = getattr(self._stub, method)
        metadata = grpc_util.bearer(self._token) if self._token else None
        for attempt in range(len(RETRY_DELAYS) + 1):
            try:
                return rpc(request() if callable(request) else request, timeout=max(timeout or 0, self._timeout_s), metadata=metadata)
            except grpc.RpcError as err:
                code = err.code()
                # A failed TLS handshake (wrong ca_cert) is also UNAVAILABLE, but retrying cannot fix it.
                tls = "handshake" in (err.details() or "").lower()
                if code == grpc.StatusCode.UNAVAILABLE and not tls and attempt < len(RETRY_DELAYS):
                    log.info("control plane unavailable, retrying", extra={"fields": {"method": method, "attempt": attempt + 1}})
                    time.sleep(RETRY_DELAYS[attempt])
                    continue
                diags = to_diagnostics(err, endpoint=self.endpoint, action=action, token_given=bool(self._token), attributes=attributes)
                raise ApiError(code, diags) from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._channel.close()
