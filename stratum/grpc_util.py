"""gRPC channel helpers shared by the CLI, the node daemon and the provider."""

from __future__ import annotations

import grpc

# The name every control-plane certificate carries (stratum/pki.py issues them): clients verify it
# whatever address they dial. Here, not in pki, so a client (the provider, started by Terraform
# several times per command) does not import cryptography for a string.
SERVER_NAME = "stratum-control-plane"

# Keepalives find dead peers (a cut link, a killed control plane) within seconds
# instead of waiting for TCP's timeouts.
CHANNEL_OPTIONS = [
    ("grpc.ssl_target_name_override", SERVER_NAME),
    ("grpc.default_authority", SERVER_NAME),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


def split_endpoint(endpoint: str, listen: bool = False) -> tuple[str, int]:
    """"host:port" or "[v6]:port" -> (host, port); ValueError naming the endpoint.

    Port 0 (any free port) is valid only for an address to `listen` on.
    """
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not (0 if listen else 1) <= int(port) < 65536:
        raise ValueError(f"invalid endpoint {endpoint!r}: expected host:port, e.g. 127.0.0.1:7443")
    return host.strip("[]"), int(port)


def channel_credentials(ca_pem: bytes, client_key_pem: bytes | None = None, client_cert_pem: bytes | None = None):
    return grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=client_key_pem, certificate_chain=client_cert_pem)


def secure_channel(endpoint: str, ca_pem: bytes, client_key_pem: bytes | None = None, client_cert_pem: bytes | None = None, aio: bool = False):
    split_endpoint(endpoint)
    creds = channel_credentials(ca_pem, client_key_pem, client_cert_pem)
    if aio:
        return grpc.aio.secure_channel(endpoint, creds, options=CHANNEL_OPTIONS)
    return grpc.secure_channel(endpoint, creds, options=CHANNEL_OPTIONS)


def bearer(token: str) -> list[tuple[str, str]]:
    """Call metadata carrying an admin token."""
    return [("authorization", f"Bearer {token}")]
