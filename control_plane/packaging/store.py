"""The control plane's content-addressed artifact store.

    <data_dir>/artifacts/sha256/<first two hex digits>/<digest>          the bytes
    <data_dir>/artifacts/sha256/<first two hex digits>/<digest>.json     optional metadata (profile, tag...)

A blob is written to a temporary file in the same folder, hashed while it is copied,
fsynced and renamed into place: a reader sees a whole, verified blob or nothing, and a
crash leaves at most a `.tmp-*` file that the next `put` of anything ignores.  Blobs are
immutable; putting the same bytes twice stores them once.

Transfer (chunked, resumable): a node asks for `read(digest, offset, length)` ranges, or
iterates `chunks(digest, offset)`, and resumes at the size of what it already holds; it
verifies the whole file against the digest at the end (node_daemon/replicas/cache.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from stratum.digests import CHUNK_SIZE, HEX64 as _HEX64, parse_digest



class ArtifactNotFound(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "artifact not found"


class DigestMismatch(ValueError):
    """Bytes whose sha256 is not the digest they were announced with."""


class ArtifactStore:
    def __init__(self, data_dir: str | os.PathLike, mirror=None):
        self.root = Path(data_dir).resolve() / "artifacts" / "sha256"
        self.root.mkdir(parents=True, exist_ok=True)
        # Several control planes on one database (control_plane/leadership.py): every blob also goes
        # into the store's blobs table, and a blob this one lacks is fetched from it (verified) on
        # first use, so an upload to any control plane is there for all, the leader's death included.
        self.mirror = mirror  # control_plane.store.Store, or None: this directory only

    def local_path(self, digest: str) -> Path:
        """The blob's file here, fetched from the mirror first if this directory lacks it (for a
        process that reads the directory itself: the training job)."""
        return self._existing(digest)

    def publish(self, digest: str) -> None:
        """Copy a blob written here by another process (the training job) to the mirror."""
        if self.mirror is None:
            return
        p = self._existing(digest)
        meta = p.with_name(p.name + ".json")
        with open(p, "rb") as f:
            self.mirror.put_blob(parse_digest(digest), iter(lambda: f.read(CHUNK_SIZE), b""),
                                 json.loads(meta.read_text()) if meta.exists() else {})

    def _from_mirror(self, digest: str) -> bool:
        """Fetch a blob this directory lacks from the mirror; False when the mirror lacks it too."""
        if self.mirror is None or self.mirror.blob_size(parse_digest(digest)) is None:
            return False
        got = self.put_stream(self.mirror.blob_chunks(parse_digest(digest)), expected=digest, mirror=False)
        meta = self.mirror.blob_metadata(got) or {}
        if meta:
            self._write_metadata(self.path(got), meta)
        return True

    # -- layout ------------------------------------------------------------------------------
    def path(self, digest: str) -> Path:
        d = parse_digest(digest)
        return self.root / d[:2] / d

    def has(self, digest: str) -> bool:
        if self.path(digest).is_file():
            return True
        return self.mirror is not None and self.mirror.blob_size(parse_digest(digest)) is not None

    def size(self, digest: str) -> int:
        if not self.path(digest).is_file() and self.mirror is not None:
            n = self.mirror.blob_size(parse_digest(digest))
            if n is not None:
                return n
        return self._existing(digest).stat().st_size

    def list(self) -> list[str]:
        return sorted(p.name for p in self.root.glob("*/*") if _HEX64.match(p.name))

    def _existing(self, digest: str) -> Path:
        p = self.path(digest)
        if not p.is_file() and not self._from_mirror(digest):
            raise ArtifactNotFound(f"artifact sha256:{parse_digest(digest)} is not in the store ({self.root})")
        return p

    # -- writing -----------------------------------------------------------------------------
    def put(self, file: str | os.PathLike) -> str:
        """Copy a file into the store; returns its sha256 (hex)."""
        with open(file, "rb") as f:
            return self.put_stream(iter(lambda: f.read(CHUNK_SIZE), b""))

    def put_stream(self, chunks: Iterable[bytes], expected: str | None = None, mirror: bool = True) -> str:
        """Store a stream of byte chunks; with `expected`, a different digest raises DigestMismatch
        and nothing is kept. Mirrored (when there is a mirror) before it returns."""
        want = parse_digest(expected) if expected else None
        h = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = h.hexdigest()
            if want and digest != want:
                raise DigestMismatch(f"artifact announced as sha256:{want} has sha256:{digest}; not stored")
            dest = self.path(digest)
            dest.parent.mkdir(exist_ok=True)
            if dest.is_file():
                os.unlink(tmp)
            else:
                os.chmod(tmp, 0o644)
                os.replace(tmp, dest)
                _fsync_dir(dest.parent)
            if mirror and self.mirror is not None:
                self.publish(digest)
            return digest
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def delete(self, digest: str) -> bool:
        if self.mirror is not None:
            self.mirror.delete_blob(parse_digest(digest))
        p = self.path(digest)
        meta = p.with_name(p.name + ".json")
        if meta.exists():
            meta.unlink()
        if p.exists():
            p.unlink()
            return True
        return False

    # -- metadata (profile numbers, tag, artifact digest) ----------------------------------------
    def put_metadata(self, digest: str, metadata: dict) -> None:
        self._write_metadata(self._existing(digest), metadata)
        if self.mirror is not None:
            self.mirror.put_blob_metadata(parse_digest(digest), metadata)

    @staticmethod
    def _write_metadata(p: Path, metadata: dict) -> None:
        meta = p.with_name(p.name + ".json")
        tmp = meta.with_name(meta.name + ".tmp")
        tmp.write_text(json.dumps(metadata, indent=2, sort_keys=True))
        os.replace(tmp, meta)

    def metadata(self, digest: str) -> dict:
        p = self._existing(digest)
        meta = p.with_name(p.name + ".json")
        return json.loads(meta.read_text()) if meta.exists() else {}

    # -- reading -----------------------------------------------------------------------------
    def open(self, digest: str) -> BinaryIO:
        return open(self._existing(digest), "rb")

    def read(self, digest: str, offset: int = 0, length: int = CHUNK_SIZE) -> bytes:
        """Bytes [offset, offset+length) (fewer at the end; b'' at or past the end)."""
        if offset < 0 or length < 0:
            raise ValueError(f"invalid range: offset={offset} length={length}")
        with self.open(digest) as f:
            f.seek(offset)
            return f.read(length)

    def chunks(self, digest: str, offset: int = 0, chunk_size: int = CHUNK_SIZE) -> Iterator[tuple[int, bytes]]:
        """(offset, bytes) from `offset` to the end: what a transfer stream sends."""
        if offset < 0 or chunk_size <= 0:
            raise ValueError(f"invalid range: offset={offset} chunk_size={chunk_size}")
        with self.open(digest) as f:
            f.seek(offset)
            pos = offset
            while block := f.read(chunk_size):
                yield pos, block
                pos += len(block)

    def verify(self, digest: str) -> bool:
        """Recompute the blob's sha256: False if it rotted on disk."""
        with self.open(digest) as f:
            h = hashlib.sha256()
            for block in iter(lambda: f.read(CHUNK_SIZE), b""):
                h.update(block)
        return h.hexdigest() == parse_digest(digest)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
