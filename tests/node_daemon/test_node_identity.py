"""Identity files in the data dir: created once, 0600, reloaded, damage reported."""

from __future__ import annotations

import json
import os
import stat

import pytest

from node_daemon import identity
from stratum import pki


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _enrolled(tmp_path) -> identity.Identity:
    key = identity.ensure_key(str(tmp_path))
    ca_key, ca_cert = pki.make_ca()
    csr = pki.load_csr(pki.make_csr(key, "n1"))
    cert = pki.sign_client_cert(ca_key, ca_cert, csr, "node-0123456789abcdef")
    return identity.save(str(tmp_path), node_id="node-0123456789abcdef", name="n1", server="127.0.0.1:7443", node_agent_port=7444,
                         tier="fog", labels={"zone": "north"}, cert_pem=cert, ca_pem=ca_cert)


def test_key_is_created_once_and_private(tmp_path):
    first = identity.ensure_key(str(tmp_path))
    assert _mode(tmp_path / identity.KEY) == 0o600
    assert identity.ensure_key(str(tmp_path)) == first  # a retried enrollment presents the same key
    pki.load_key(first)


def test_fresh_dir_has_no_identity(tmp_path):
    assert identity.load(str(tmp_path)) is None
    identity.ensure_key(str(tmp_path))
    assert identity.load(str(tmp_path)) is None  # a key alone is not an enrollment


def test_save_and_load_round_trip(tmp_path):
    saved = _enrolled(tmp_path)
    loaded = identity.load(str(tmp_path))
    assert loaded == saved
    for name in (identity.KEY, identity.CERT, identity.CA, identity.META):
        assert _mode(tmp_path / name) == 0o600, name
    # The certificate on disk is for the key on disk.
    cert = pki.load_cert(loaded.cert_pem)
    assert pki.public_key_fingerprint(cert.public_key()) == pki.public_key_fingerprint(pki.load_key(loaded.key_pem).public_key())
    meta = json.loads((tmp_path / identity.META).read_text())
    assert meta == {"node_id": "node-0123456789abcdef", "name": "n1", "server": "127.0.0.1:7443", "node_agent_port": 7444,
                    "tier": "fog", "labels": {"zone": "north"}}


def test_missing_certificate_is_reported(tmp_path):
    _enrolled(tmp_path)
    (tmp_path / identity.CERT).unlink()
    with pytest.raises(identity.IdentityError, match="node.crt is missing"):
        identity.load(str(tmp_path))


def test_damaged_metadata_is_reported(tmp_path):
    _enrolled(tmp_path)
    (tmp_path / identity.META).write_text("{not json")
    with pytest.raises(identity.IdentityError, match="node.json is damaged"):
        identity.load(str(tmp_path))


def test_damaged_key_is_reported(tmp_path):
    (tmp_path / identity.KEY).write_text("garbage")
    with pytest.raises(identity.IdentityError, match="node.key"):
        identity.ensure_key(str(tmp_path))


def test_prepare_dir_is_private(tmp_path):
    d = tmp_path / "a" / "b"
    identity.prepare_dir(str(d))
    assert _mode(d) == 0o700
