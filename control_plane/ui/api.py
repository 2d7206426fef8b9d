"""The dashboard's way to the control plane: the public gRPC API, like the CLI and the provider.

    api = Api("127.0.0.1:7443", ca_pem)
    api.call("ListNodes", cp.ListNodesRequest(), token=session.token)
    # ApiError(code="PERMISSION_DENIED", message=..., violations=[(field, why), ...]) on a refusal

Going through the API rather than the service objects keeps one set of rules: the same
validation, the same errors (the dashboard shows them as they come), and the same scope checks
for a read token. The calls cross loopback inside this process.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from stratum.grpc_util import bearer, secure_channel
from stratum.v1 import control_plane_pb2_grpc as cp_grpc


class ApiError(Exception):
    def __init__(self, code: str, message: str, violations: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.code, self.message, self.violations = code, message, violations or []

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def _error(e: grpc.RpcError) -> ApiError:
    violations = []
    status = rpc_status.from_call(e) if hasattr(e, "trailing_metadata") else None
    for detail in status.details if status else ():
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            violations += [(v.field, v.description) for v in bad.field_violations]
    return ApiError(e.code().name, e.details() or "", violations)


class Api:
    def __init__(self, endpoint: str, ca_pem: bytes):
        self.endpoint = endpoint
        self._channel = secure_channel(endpoint, ca_pem)
        self._stub = cp_grpc.ControlPlaneStub(self._channel)

    def call(self, method: str, request, token: str, timeout: float = 15.0):
        try:
            return getattr(self._stub, method)(request, metadata=bearer(token), timeout=timeout)
        except grpc.RpcError as e:
            raise _error(e) from None

    def stream(self, method: str, request, token: str, timeout: float = 15.0) -> list:
        """A server-streaming call read to its end (within `timeout`)."""
        try:
            return list(getattr(self._stub, method)(request, metadata=bearer(token), timeout=timeout))
        except grpc.RpcError as e:
            raise _error(e) from None

    def close(self) -> None:
        self._channel.close()
