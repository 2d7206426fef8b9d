"""ServiceManager's bento download: resumes after a broken stream, rejects corrupt bytes (real BentoCache)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from node_daemon.replicas.cache import BentoCache, DigestMismatch
from node_daemon.services import ServiceManager

BLOB = bytes(range(256)) * 4096  # 1 MiB
DIGEST = hashlib.sha256(BLOB).hexdigest()


def fetcher(data: bytes, break_at: list[int], offsets: list[int]):
    """Serves `data` from the asked offset in 64 KiB chunks; the first streams break at the given byte."""

    async def fetch(digest: str, offset: int):
        offsets.append(offset)
        stop = break_at.pop(0) if break_at else None
        for pos in range(offset, len(data), 65536):
            if stop is not None and pos >= stop:
                raise ConnectionError("stream reset")
            yield data[pos:pos + 65536]

    return fetch


def test_download_resumes_where_the_broken_stream_stopped(tmp_path):
    cache = BentoCache(tmp_path / "cache", max_bytes=1 << 30)
    offsets: list[int] = []
    mgr = ServiceManager(None, cache, fetcher(BLOB, [300_000, 700_000], offsets))
    asyncio.run(mgr._download(DIGEST, len(BLOB)))
    assert cache.has(DIGEST) and cache.path(DIGEST).read_bytes() == BLOB
    assert offsets[0] == 0 and 0 < offsets[1] <= 300_000 + 65536 and offsets[1] < offsets[2] <= 700_000 + 65536


def test_corrupt_bytes_are_rejected_and_not_kept(tmp_path):
    cache = BentoCache(tmp_path / "cache", max_bytes=1 << 30)
    bad = bytearray(BLOB)
    bad[12345] ^= 1
    mgr = ServiceManager(None, cache, fetcher(bytes(bad), [], []))
    with pytest.raises(DigestMismatch, match="failed verification"):
        asyncio.run(mgr._download(DIGEST, len(BLOB)))
    assert not cache.has(DIGEST) and cache.resume_offset(DIGEST) == 0
