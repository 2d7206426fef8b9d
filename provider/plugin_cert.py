"""The plugin's TLS certificate (go-plugin's AutoMTLS), without parsing it at every start.

Terraform starts the plugin two to four times per command, and each start hands Terraform a
self-signed server certificate. tf (tf.runner._self_signed_cert) makes one and caches it for 7
days, but on every start it imports cryptography to parse the cached certificate for its expiry:
about 45 ms of a 170 ms start. Here the expiry is kept beside the certificate, so a warm start
reads one JSON file; cryptography is imported only when tf makes a new certificate.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

RENEW_BEFORE_S = 3600  # a certificate this close to its end is made again, not handed out

CACHE_NAME = "terraform-provider-stratum-cert.json"


def cached(make: Callable[[], tuple[bytes, Any]], tf_cache: Path) -> Callable[[], tuple[bytes, Any]]:
    """A stand-in for tf's `make` (its _self_signed_cert), which caches what it makes in `tf_cache`:
    (certificate DER, gRPC server credentials) from our cache while it is valid, else from `make`."""

    def cert() -> tuple[bytes, Any]:
        import grpc

        ours = tf_cache.with_name(CACHE_NAME)
        try:
            c = json.loads(ours.read_text())
            if float(c["not_after"]) - time.time() > RENEW_BEFORE_S:
                return base64.b64decode(c["cert_chain"]), grpc.ssl_server_credentials(
                    [(c["key_pem"].encode(), c["cert_pem"].encode())], require_client_auth=False)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # none yet, or unreadable: make one
        chain, creds = make()
        _remember(tf_cache, ours, chain)
        return chain, creds

    return cert


def _remember(tf_cache: Path, ours: Path, chain: bytes) -> None:
    """Copy what tf cached, with its expiry read once. Anything unexpected (tf changed how it caches)
    leaves no file: every start then goes through tf, slower but still right."""
    from cryptography import x509

    try:
        c = json.loads(tf_cache.read_text())
        if base64.b64decode(c["cert_chain"]) != chain:
            return
        not_after = x509.load_pem_x509_certificate(c["cert_pem"].encode()).not_valid_after_utc.timestamp()
        tmp = ours.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)  # it holds the private key
        with open(fd, "w") as f:
            json.dump({**{k: c[k] for k in ("key_pem", "cert_pem", "cert_chain")}, "not_after": not_after}, f)
        os.replace(tmp, ours)  # a plugin starting beside this one reads the old file or the new, never half
    except (OSError, ValueError, KeyError, TypeError):
        return
