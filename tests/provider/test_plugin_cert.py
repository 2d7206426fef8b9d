"""The plugin's certificate: made by tf once, then read from our cache without cryptography; made
again when it is about to expire or our cache is unreadable. Every e2e test's Terraform run checks
that Terraform accepts what is handed out."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import tf.runner

from provider import plugin_cert

ROOT = Path(__file__).resolve().parents[2]


def test_made_once_then_read_back_without_parsing(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    cert = plugin_cert.cached(tf.runner._self_signed_cert, tf.runner._get_cert_cache_path())
    chain, creds = cert()
    ours = json.loads((tmp_path / ".cache" / "tf-python-provider" / plugin_cert.CACHE_NAME).read_text())
    assert base64.b64decode(ours["cert_chain"]) == chain and creds is not None
    assert 6 * 86400 < ours["not_after"] - time.time() <= 7 * 86400  # tf's certificates last 7 days
    assert oct(os.stat(tmp_path / ".cache" / "tf-python-provider" / plugin_cert.CACHE_NAME).st_mode)[-3:] == "600"

    # A start of the plugin (a fresh process): the same certificate, and cryptography never imported.
    code = ("import sys, tf.runner; from provider import plugin_cert; "
            "chain, _ = plugin_cert.cached(tf.runner._self_signed_cert, tf.runner._get_cert_cache_path())(); "
            "print(chain.hex(), 'cryptography' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "HOME": str(tmp_path)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [chain.hex(), "False"]


def test_an_expiring_or_unreadable_cache_is_made_again(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    made = []

    def make():
        made.append(1)
        return tf.runner._self_signed_cert()

    cache = tf.runner._get_cert_cache_path()
    ours = cache.with_name(plugin_cert.CACHE_NAME)
    cert = plugin_cert.cached(make, cache)
    first, _ = cert()
    assert cert()[0] == first and len(made) == 1

    doc = json.loads(ours.read_text())
    ours.write_text(json.dumps({**doc, "not_after": time.time() + plugin_cert.RENEW_BEFORE_S / 2}))
    cache.unlink()  # tf's own cache gone too, so it makes a new one
    second, _ = cert()
    assert len(made) == 2 and second != first
    assert json.loads(ours.read_text())["not_after"] > time.time() + 6 * 86400

    ours.write_text("{not json")
    assert cert()[0] == second and len(made) == 3  # through tf (its cache is valid), and ours is whole again
    assert base64.b64decode(json.loads(ours.read_text())["cert_chain"]) == second
