"""First start: exchange a join token and a CSR for a node identity.

Trust bootstrap: the join token carries the SHA-256 of the control plane's CA,
so the CA fetched from an unverified handshake is checked before anything
secret (the token) is sent over a connection that trusts it.
"""

from __future__ import annotations

import logging
import random
import time

import grpc

from node_daemon import identity
from node_daemon.capabilities import collect
from stratum import pki
from stratum.grpc_util import secure_channel, split_endpoint
from stratum.logs import event
from stratum.tokens import parse_join_token
from stratum.v1 import node_agent_pb2, node_agent_pb2_grpc

log = logging.getLogger(__name__)

RETRY_FOR_S = 30.0  # how long an unreachable control plane is retried before giving up
CALL_TIMEOUT_S = 10.0
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class EnrollError(Exception):
    """Enrollment failed; the message is the one line the operator sees. exit_code: 2 for bad input, 1 otherwise."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class _Unreachable(Exception):
    pass


def _retry(what: str, endpoint: str, fn, retry_for: float):
    """fn() until it stops raising _Unreachable or `retry_for` seconds pass (capped backoff with jitter)."""
    deadline = time.monotonic() + retry_for
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except _Unreachable as e:
            left = deadline - time.monotonic()
            if left <= 0:
                raise EnrollError(f"cannot reach the control plane at {endpoint} (tried for {retry_for:.0f}s): {e}") from None
            delay = min(left, min(8.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))
            event(log, f"{what}: control plane unreachable, retrying", level=logging.WARNING,
                  endpoint=endpoint, attempt=attempt, retry_in_s=round(delay, 2), error=str(e))
            time.sleep(delay)


def _load_ca(server: str, fingerprint: str, ca_cert_path: str | None, retry_for: float) -> bytes:
    if ca_cert_path:
        try:
            with open(ca_cert_path, "rb") as f:
                pem = f.read()
            fp = pki.fingerprint(pem)
        except (OSError, ValueError) as e:
            raise EnrollError(f"cannot read the CA certificate --ca-cert {ca_cert_path}: {e}", 2) from None
        if fp != fingerprint:
            raise EnrollError(f"--ca-cert {ca_cert_path} is not the CA this join token was issued by (fingerprint differs)", 2)
        return pem
    host, port = split_endpoint(server)

    def fetch():
        try:
            return pki.fetch_ca(host, port, fingerprint, timeout=CALL_TIMEOUT_S)
        except ConnectionError as e:
            raise _Unreachable(str(e.__cause__ or e)) from None
        except ValueError as e:
            raise EnrollError(str(e)) from None

    return _retry("fetching the CA", server, fetch, retry_for)


def _explain(e: grpc.RpcError, server: str, name: str) -> EnrollError:
    code, details = e.code(), e.details() or ""
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return EnrollError(f"enrollment refused by {server}: {details}")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return EnrollError(f"enrollment rejected: {details}", 2)
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return EnrollError(f"the node name {name!r} is taken: {details}. Pick another --name, "
                           "or start with the data dir that enrolled it")
    return EnrollError(f"enrollment failed ({code.name}) at {server}: {details}")


def enroll(*, server: str, join_token: str, name: str, tier: str, labels: dict[str, str], data_dir: str,
           ca_cert_path: str | None = None, retry_for: float = RETRY_FOR_S) -> identity.Identity:
    try:
        parts = parse_join_token(join_token)
    except ValueError as e:
        raise EnrollError(str(e), 2) from None
    ca_pem = _load_ca(server, parts.ca_fingerprint, ca_cert_path, retry_for)
    identity.prepare_dir(data_dir)
    key_pem = identity.ensure_key(data_dir)  # on disk before the first Enroll: a retry sends the same key
    request = node_agent_pb2.EnrollRequest(
        join_token=join_token.strip(), name=name, tier=tier, labels=labels,
        csr_pem=pki.make_csr(key_pem, name).decode(), capabilities=collect(data_dir))

    with secure_channel(server, ca_pem) as channel:
        stub = node_agent_pb2_grpc.NodeAgentStub(channel)

        def call():
            try:
                return stub.Enroll(request, timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as e:
                if e.code() in RETRYABLE:
                    raise _Unreachable(e.details() or e.code().name) from None
                raise _explain(e, server, name) from None

        resp = _retry("enrolling", server, call, retry_for)

    ident = identity.save(data_dir, node_id=resp.node_id, name=name, server=server, node_agent_port=resp.node_agent_port,
                          tier=resp.tier, labels=dict(resp.labels), cert_pem=resp.certificate_pem.encode(),
                          ca_pem=(resp.ca_pem or ca_pem.decode()).encode())
    event(log, "enrolled", node_id=ident.node_id, name=name, tier=ident.tier, labels=ident.labels, server=server)
    return ident


def enroll_any(servers: list[str], *, join_token: str, name: str, tier: str, labels: dict[str, str], data_dir: str,
               ca_cert_path: str | None = None, retry_for: float = RETRY_FOR_S) -> identity.Identity:
    """enroll() with several control planes (one database, one CA): any of them enrolls a node.
    Each is tried in turn for a share of `retry_for`; an answer that is not "unreachable" (a bad
    token, a taken name) ends it at once, as with one."""
    if len(servers) == 1:
        return enroll(server=servers[0], join_token=join_token, name=name, tier=tier, labels=labels,
                      data_dir=data_dir, ca_cert_path=ca_cert_path, retry_for=retry_for)
    deadline = time.monotonic() + retry_for
    share = max(5.0, retry_for / (2 * len(servers)))
    while True:
        for server in servers:
            try:
                ident = enroll(server=server, join_token=join_token, name=name, tier=tier, labels=labels,
                               data_dir=data_dir, ca_cert_path=ca_cert_path, retry_for=share)
            except EnrollError as e:
                if "cannot reach" not in str(e) or time.monotonic() >= deadline:
                    raise
                continue
            # every control plane of the cluster serves the node: the session picks the leader
            return identity.save(data_dir, node_id=ident.node_id, name=ident.name, server=",".join(servers),
                                 node_agent_port=ident.node_agent_port, tier=ident.tier, labels=ident.labels,
                                 cert_pem=ident.cert_pem, ca_pem=ident.ca_pem)
