"""sha256 content digests, as the artifact store, the node cache and the API write them."""

from __future__ import annotations

import hashlib
import os
import re

HEX64 = re.compile(r"^[0-9a-f]{64}$")
CHUNK_SIZE = 1 << 20


def parse_digest(digest: str) -> str:
    """'sha256:<hex>' or '<hex>' -> lowercase hex; anything else is a ValueError (never a path)."""
    d = digest.strip()
    if d.startswith("sha256:"):
        d = d[len("sha256:"):]
    d = d.lower()
    if not HEX64.match(d):
        raise ValueError(f"not a sha256 digest: {digest!r} (expected 64 hex digits, optionally prefixed 'sha256:')")
    return d


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_SIZE), b""):
            h.update(block)
    return h.hexdigest()
