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


# -- several control planes on one database -------------------------------------------------------
CLUSTER_KEY = "cluster.key"


class ClusterKeyError(Exception):
    """The database's CA is not this data dir's, and its key cannot be opened here."""


class DataDirBusy(Exception):
    """Another process holds the data dir."""


def share_with_cluster(dd: DataDir, store, hosts: list[str], key_file: str | None = None) -> DataDir:
    """Make every control plane on one database use one CA and one admin token.

    The first control plane stores its CA certificate, and its CA key and admin token encrypted
    with a cluster key (Fernet: AES-128 and an HMAC), which it keeps as <data dir>/cluster.key
    (0600). Another control plane, given that file (--cluster-key-file, or a copy in its own data
    dir), takes the stored CA and token into its data dir and reissues its server certificate, so
    a node certificate or a join token from one control plane is good on all of them. The database
    alone holds nothing that opens the CA key."""
    from cryptography.fernet import Fernet, InvalidToken

    local_key = os.path.join(dd.path, CLUSTER_KEY)
    path = key_file or local_key
    if not os.path.exists(path):
        if key_file:
            raise ClusterKeyError(f"--cluster-key-file {key_file}: no such file")
        if store.cluster_value("ca_cert") is not None and store.cluster_value("ca_cert") != dd.ca_cert_pem.decode():
            raise ClusterKeyError("this database already serves control planes with another CA: copy cluster.key from "
                                  "the first control plane's data dir and give it with --cluster-key-file")
        pki.write_private(local_key, Fernet.generate_key() + b"\n")
        path = local_key
    key = _read(path).strip()
    try:
        f = Fernet(key)
    except ValueError:
        raise ClusterKeyError(f"{path} is not a cluster key (44 characters of urlsafe base64)") from None
    ca_cert = store.cluster_value("ca_cert", dd.ca_cert_pem.decode())
    ca_key_enc = store.cluster_value("ca_key", f.encrypt(dd.ca_key_pem).decode())
    token_enc = store.cluster_value("admin_token", f.encrypt(dd.admin_token.encode()).decode())
    try:
        ca_key, admin = f.decrypt(ca_key_enc.encode()), f.decrypt(token_enc.encode()).decode()
    except InvalidToken:
        raise ClusterKeyError(f"{path} does not open this database's CA key: it is another cluster's key") from None
    if key_file and os.path.realpath(key_file) != os.path.realpath(local_key):
        pki.write_private(local_key, key + b"\n")
    if ca_cert == dd.ca_cert_pem.decode() and admin == dd.admin_token:
        return dd
    # Another control plane started the cluster: take its CA and token, and a certificate from it.
    pki.write_private(os.path.join(dd.path, "ca.key"), ca_key)
    pki.write_private(os.path.join(dd.path, "ca.pem"), ca_cert.encode())
    pki.write_private(os.path.join(dd.path, "admin.token"), admin + "\n")
    server_key, server_cert = pki.issue_server_cert(ca_key, ca_cert.encode(), hosts)
    pki.write_private(os.path.join(dd.path, "server.key"), server_key)
    pki.write_private(os.path.join(dd.path, "server.pem"), server_cert)
    return DataDir(dd.path, ca_key, ca_cert.encode(), server_key, server_cert, admin, dd.created)


def lock_data_dir(path: str):
    """Hold an exclusive lock on the data dir for this process's life: two control planes on one
    data dir would be one leader twice. Returns the open lock file (keep it referenced)."""
    import fcntl

    f = open(os.path.join(path, ".lock"), "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise DataDirBusy(f"another control plane is running with the data dir {path}") from None
    return f
