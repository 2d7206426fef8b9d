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


def test_a_stream_cancelled_by_its_channel_closing_is_a_broken_transfer_not_the_end(tmp_path):
    """grpc.aio ends the calls of a channel that closes (the session ended under the download) with
    CancelledError. It was let through as if the download itself were cancelled, killing the app's
    or service's task, which then stayed "starting" with nothing running."""
    cache = BentoCache(tmp_path / "cache", max_bytes=1 << 30)
    offsets: list[int] = []

    async def fetch(digest: str, offset: int):
        offsets.append(offset)
        for pos in range(offset, len(BLOB), 65536):
            if len(offsets) == 1 and pos >= 400_000:
                raise asyncio.CancelledError()  # what the closed channel's call raises
            yield BLOB[pos:pos + 65536]

    mgr = ServiceManager(None, cache, fetch)
    asyncio.run(mgr._download(DIGEST, len(BLOB)))
    assert cache.has(DIGEST) and cache.path(DIGEST).read_bytes() == BLOB
    assert len(offsets) == 2 and 0 < offsets[1] <= 400_000 + 65536


@pytest.mark.timeout(60)
def test_a_download_that_is_itself_cancelled_stops_and_keeps_a_resumable_prefix(tmp_path):
    """Its writer thread ends too (asyncio.run waits for it: a thread left waiting on the queue
    would hang here), and what it wrote is a prefix to resume from."""
    cache = BentoCache(tmp_path / "cache", max_bytes=1 << 30)
    started = None

    async def fetch(digest: str, offset: int):
        for pos in range(offset, len(BLOB), 65536):
            if pos >= 300_000:
                started.set()
                await asyncio.sleep(3600)
            yield BLOB[pos:pos + 65536]

    async def scenario():
        nonlocal started
        started = asyncio.Event()
        task = asyncio.create_task(ServiceManager(None, cache, fetch)._download(DIGEST, len(BLOB)))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.2)  # the writer's thread has ended with the error it was handed

    asyncio.run(scenario())
    held = cache.resume_offset(DIGEST)
    assert not cache.has(DIGEST) and 0 <= held <= 300_000
    part = next((tmp_path / "cache").rglob(f"{DIGEST}.part"), None)
    assert part is None or BLOB.startswith(part.read_bytes())
