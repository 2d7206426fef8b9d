"""The node's identity, persisted in its data dir.

    node.key   private key (0600), created before the first Enroll so a retried
               enrollment presents the same key and the server sees the same node
    node.crt   client certificate from enrollment (common name = node id)
    ca.pem     the control plane's CA, trusted from then on
    node.json  {node_id, name, server, node_agent_port, tier, labels}

node.json is written last: its presence means enrollment completed, so a daemon
killed half-way simply enrolls again (same key, same node) on its next start.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from stratum import pki

KEY, CERT, CA, META = "node.key", "node.crt", "ca.pem", "node.json"


class IdentityError(Exception):
    """The data dir holds a damaged identity; the message says which file."""


@dataclass
class Identity:
    data_dir: str
    node_id: str
    name: str
    server: str
    node_agent_port: int
    tier: str
    labels: dict[str, str] = field(default_factory=dict)

    def path(self, name: str) -> str:
        return os.path.join(self.data_dir, name)

    def read(self, name: str) -> bytes:
        with open(self.path(name), "rb") as f:
            return f.read()

    @property
    def key_pem(self) -> bytes:
        return self.read(KEY)

    @property
    def cert_pem(self) -> bytes:
        return self.read(CERT)

    @property
    def ca_pem(self) -> bytes:
        return self.read(CA)


def prepare_dir(data_dir: str) -> None:
    os.makedirs(data_dir, mode=0o700, exist_ok=True)


def ensure_key(data_dir: str) -> bytes:
    """The node's key PEM: the one on disk, or a new one written (0600) before anyone sees it."""
    path = os.path.join(data_dir, KEY)
    if os.path.exists(path):
        with open(path, "rb") as f:
            pem = f.read()
        try:
            pki.load_key(pem)
        except ValueError as e:
            raise IdentityError(f"{path} is not a readable private key ({e}); move it away to enroll anew") from None
        return pem
    pem = pki.key_pem(pki.new_key())
    pki.write_private(path, pem)
    return pem


def load(data_dir: str) -> Identity | None:
    """The saved identity, None when this data dir never completed an enrollment."""
    meta_path = os.path.join(data_dir, META)
    if not os.path.exists(meta_path):
        return None
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        ident = Identity(data_dir=data_dir, node_id=meta["node_id"], name=meta["name"], server=meta["server"],
                         node_agent_port=int(meta["node_agent_port"]), tier=meta.get("tier", ""), labels=dict(meta.get("labels", {})))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise IdentityError(f"{meta_path} is damaged ({type(e).__name__}: {e})") from None
    for name in (KEY, CERT, CA):
        if not os.path.exists(ident.path(name)):
            raise IdentityError(f"{ident.path(name)} is missing: the identity of node {ident.node_id} is incomplete")
    return ident


def save(data_dir: str, *, node_id: str, name: str, server: str, node_agent_port: int, tier: str, labels: dict[str, str],
         cert_pem: bytes, ca_pem: bytes) -> Identity:
    """Persist an enrollment; node.key must already be there (ensure_key)."""
    ident = Identity(data_dir, node_id, name, server, node_agent_port, tier, dict(labels))
    pki.write_private(ident.path(CERT), cert_pem)
    pki.write_private(ident.path(CA), ca_pem)
    meta = {k: v for k, v in asdict(ident).items() if k != "data_dir"}
    pki.write_private(ident.path(META), json.dumps(meta, indent=2, sort_keys=True) + "\n")  # last: the commit point
    return ident
