"""A ControlPlane client for the CLI: endpoint, admin token and CA from flags, env or a data dir."""

from __future__ import annotations

import os

import grpc

from stratum.grpc_util import bearer, secure_channel
from stratum.v1 import control_plane_pb2_grpc as cp_grpc


class ClientError(Exception):
    """A problem to print as one line (no traceback)."""


def _read(path: str, what: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        raise ClientError(f"cannot read {what} {path}: {e.strerror}") from None


class Client:
    def __init__(self, endpoint: str, token: str | None, ca_cert: str | None, data_dir: str | None = None):
        if data_dir:
            token = token or _read(os.path.join(data_dir, "admin.token"), "admin token")
            ca_cert = ca_cert or os.path.join(data_dir, "ca.pem")
        if not token:
            raise ClientError("no admin token: pass --token, set STRATUM_TOKEN or --data-dir")
        if not ca_cert:
            raise ClientError("no CA certificate: pass --ca-cert, set STRATUM_CA_CERT or --data-dir")
        # Several control planes (high availability) as "a:7443,b:7443": the next is tried when one
        # is unreachable.
        self.endpoints = [e.strip() for e in endpoint.split(",") if e.strip()] or [endpoint]
        self._ca = _read(ca_cert, "CA certificate").encode()
        self.metadata = bearer(token)
        self._connect(0)

    def _connect(self, i: int) -> None:
        self._index, self.endpoint = i, self.endpoints[i]
        try:
            self.channel = secure_channel(self.endpoint, self._ca)
        except ValueError as e:
            raise ClientError(str(e)) from None
        self.stub = cp_grpc.ControlPlaneStub(self.channel)

    def call(self, method: str, request, timeout: float = 10.0):
        for left in range(len(self.endpoints) - 1, -1, -1):
            try:
                return getattr(self.stub, method)(request, metadata=self.metadata, timeout=timeout)
            except grpc.RpcError as e:
                if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    if left:
                        self.channel.close()
                        self._connect((self._index + 1) % len(self.endpoints))
                        continue
                    raise ClientError(f"cannot reach the Stratum control plane at {self.endpoint}: {e.details()}") from None
                raise ClientError(f"{e.code().name}: {e.details()}") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.channel.close()
