"""The control plane's data dir: CA, server certificate, admin token, join token.

First start creates them (secrets with 0600 permissions); later starts reuse
them. The server certificate is reissued on every start so it always names
the addresses the control plane listens on now.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass

import psutil

from stratum import pki


@dataclass
class DataDir:
    path: str
    ca_key_pem: bytes
    ca_cert_pem: bytes
    server_key_pem: bytes
    server_cert_pem: bytes
    admin_token: str
    created: bool

    @property
    def ca_path(self) -> str:
        return os.path.join(self.path, "ca.pem")

    @property
    def admin_token_path(self) -> str:
        return os.path.join(self.path, "admin.token")

    @property
    def join_token_path(self) -> str:
        return os.path.join(self.path, "join.token")


def local_addresses() -> list[str]:
    out = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            try:
                ip = ipaddress.ip_address(a.address.split("%")[0])
            except ValueError:
                continue
            if not ip.is_link_local:
                out.append(str(ip))
    return out


def cert_hosts(listen_hosts: list[str], advertise: list[str]) -> list[str]:
    hosts = ["127.0.0.1", "::1"] + list(advertise)
    for h in listen_hosts:
        hosts.extend(local_addresses() if h in ("0.0.0.0", "::", "") else [h])
    return hosts


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def open_data_dir(path: str, hosts: list[str]) -> DataDir:
    os.makedirs(path, mode=0o700, exist_ok=True)
    ca_key, ca_cert = os.path.join(path, "ca.key"), os.path.join(path, "ca.pem")
    admin = os.path.join(path, "admin.token")
    created = not os.path.exists(ca_key)
    if created:
        key_pem, cert_pem = pki.make_ca()
        pki.write_private(ca_key, key_pem)
        pki.write_private(ca_cert, cert_pem)
    if not os.path.exists(admin):
        pki.write_private(admin, secrets.token_urlsafe(32) + "\n")
    ca_key_pem, ca_cert_pem = _read(ca_key), _read(ca_cert)
    server_key, server_cert = pki.issue_server_cert(ca_key_pem, ca_cert_pem, hosts)
    pki.write_private(os.path.join(path, "server.key"), server_key)
    pki.write_private(os.path.join(path, "server.pem"), server_cert)
    return DataDir(path, ca_key_pem, ca_cert_pem, server_key, server_cert, _read(admin).decode().strip(), created)
