"""The node's bento cache: resumable verified transfers, import, LRU eviction."""

from __future__ import annotations

import hashlib
import os

import pytest

from node_daemon.replicas.cache import BentoCache, CacheError, DigestMismatch, IncompleteTransfer


class FlakySource:
    """Range reads from the ArtifactStore that break once after `fail_after` chunks (a dropped stream)."""

    def __init__(self, store, digest, fail_after=None, corrupt_at=None):
        self.store, self.digest, self.fail_after, self.corrupt_at = store, digest, fail_after, corrupt_at
        self.calls: list[int] = []

    def __call__(self, offset: int, length: int) -> bytes:
        if self.fail_after is not None and len(self.calls) == self.fail_after:
            self.fail_after = None
            raise ConnectionResetError("stream broken")
        self.calls.append(offset)
        data = self.store.read(self.digest, offset, length)
        if self.corrupt_at is not None and offset <= self.corrupt_at < offset + len(data):
            b = bytearray(data)
            b[self.corrupt_at - offset] ^= 0x01
            data = bytes(b)
        return data


def test_interrupted_transfer_resumes_where_it_stopped(store, built, tmp_path):
    art, _ = built
    cache = BentoCache(tmp_path / "node", max_bytes=1 << 30)
    size = store.size(art.sha256)
    # First attempt: the chunk iterator breaks after 3 chunks of 1 KiB; the partial file keeps them.
    src = FlakySource(store, art.sha256)

    def stream(offset):
        pos = offset
        for _ in range(3):
            block = src(pos, 1024)
            yield block
            pos += len(block)
        raise ConnectionResetError("stream broken")

    with pytest.raises(ConnectionResetError):
        cache.put(art.sha256, stream(0), size=size)
    assert cache.resume_offset(art.sha256) == 3072 and not cache.has(art.sha256)
    # A short stream says so and keeps the bytes.
    with pytest.raises(IncompleteTransfer, match="resume"):
        cache.put(art.sha256, [store.read(art.sha256, 3072, 1024)], offset=3072, size=size)
    assert cache.resume_offset(art.sha256) == 4096
    with pytest.raises(CacheError, match="only 4096 bytes are held"):
        cache.put(art.sha256, [], offset=5000, size=size)
    # fetch() resumes at 4096, survives another broken read, and verifies.
    src2 = FlakySource(store, art.sha256, fail_after=1)
    path = cache.fetch(art.sha256, size, src2, chunk_size=1024, retry_delay=0)
    assert src2.calls[0] == 4096 and min(src2.calls) == 4096  # never re-read the first 4 KiB
    assert path.read_bytes() == open(art.path, "rb").read()
    assert cache.has(art.sha256) and not list((tmp_path / "node" / "partial").iterdir())


def test_corrupted_bento_is_rejected_with_a_clear_message(store, built, tmp_path):
    art, _ = built
    cache = BentoCache(tmp_path / "node", max_bytes=1 << 30)
    size = store.size(art.sha256)
    src = FlakySource(store, art.sha256, corrupt_at=size // 2)
    with pytest.raises(DigestMismatch) as err:
        cache.fetch(art.sha256, size, src, chunk_size=2048)
    msg = str(err.value)
    assert f"bento sha256:{art.sha256} failed verification" in msg and "deleted" in msg
    assert not cache.has(art.sha256) and cache.resume_offset(art.sha256) == 0
    assert not list((tmp_path / "node" / "partial").iterdir())
    # Bytes announced under someone else's digest are rejected the same way.
    with pytest.raises(DigestMismatch, match="failed verification"):
        cache.put_file(hashlib.sha256(b"other").hexdigest(), art.path)
    with pytest.raises(CacheError, match="not in the node cache"):
        cache.acquire(art.sha256)


def test_import_gives_a_servable_tag(store, built, tmp_path):
    art, _ = built
    cache = BentoCache(tmp_path / "node", max_bytes=1 << 30)
    cache.fetch(art.sha256, store.size(art.sha256), lambda o, n: store.read(art.sha256, o, n))
    tag = cache.acquire(art.sha256)
    assert tag == "congestion:v1"
    assert (cache.bentoml_home / "bentos" / "congestion" / "v1" / "src" / "model" / "model.joblib").is_file()
    assert cache.acquire(art.sha256) == tag  # imported once, pinned twice
    e = cache.entries()[art.sha256]
    assert e["in_use"] == 2 and e["imported"] and e["imported_size"] > 0
    cache.release(art.sha256)
    cache.release(art.sha256)
    assert cache.entries()[art.sha256]["in_use"] == 0
    # A restarted daemon finds its cache again.
    again = BentoCache(tmp_path / "node", max_bytes=1 << 30)
    assert again.has(art.sha256) and again.entries()[art.sha256]["tag"] == tag


def test_lru_eviction_by_size_never_evicts_a_bento_in_use(tmp_path):
    blobs = [os.urandom(4000) for _ in range(4)]
    digests = [hashlib.sha256(b).hexdigest() for b in blobs]
    cache = BentoCache(tmp_path / "node", max_bytes=10_000)
    cache.put(digests[0], [blobs[0]])
    cache.put(digests[1], [blobs[1]])
    cache.pin(digests[0])  # oldest, but a replica uses it
    cache.put(digests[2], [blobs[2]])  # 12000 > 10000: evict the LRU entry not in use -> digests[1]
    assert cache.has(digests[0]) and not cache.has(digests[1]) and cache.has(digests[2])
    assert cache.total_bytes() == 8000
    cache.put(digests[3], [blobs[3]])  # evicts digests[2]; digests[0] still pinned
    assert cache.has(digests[0]) and not cache.has(digests[2]) and cache.has(digests[3])
    cache.release(digests[0])  # its replica stopped just now: it is the most recently used
    cache.put(digests[1], [blobs[1]])
    assert cache.has(digests[0]) and cache.has(digests[1]) and not cache.has(digests[3])
    assert cache.total_bytes() <= 10_000
