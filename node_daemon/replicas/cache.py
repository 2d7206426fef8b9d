"""The node's bento cache: archives fetched by digest, verified, imported, evicted by size.

    cache = BentoCache(data_dir / "bentos", max_bytes=2 << 30)
    cache.fetch(digest, size, read_range)       # resumable chunked download, sha256-verified
    tag = cache.acquire(digest)                  # `bentoml import` once; pinned while a replica uses it
    ...                                          # ReplicaRunner(cache.bentoml_home, ...).start(tag)
    cache.release(digest)

Layout under the cache directory:
    blobs/<digest>.bento       verified archives (the control plane's canonical .bento files)
    partial/<digest>.part      a download in progress: its size is where the next one resumes
    bentoml/                   the node-local BENTOML_HOME that `bentoml import` fills
    index.json                 per digest: size, imported tag and size, last use (LRU order)

A transfer writes chunks straight to the `.part` file (unbuffered, so an interrupted daemon
keeps what reached the kernel); `put(..., offset=N)` resumes at N <= the bytes held.  When the
announced size is reached the whole file is hashed: a mismatch deletes it and raises
DigestMismatch, a match renames it into blobs/.  Eviction removes least recently used bentos
(archive and imported copy) until the total is within `max_bytes`, and never one that is
acquired (in use by a replica) or that was just stored.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from stratum.runtime.runner import bentoml_cli, bentoml_env
from stratum.bentos import read_bento_info
from stratum.digests import CHUNK_SIZE, HEX64 as _HEX64, file_sha256, parse_digest

log = logging.getLogger(__name__)

IMPORT_TIMEOUT_S = 300


class CacheError(RuntimeError):
    pass


class Unreachable(CacheError):
    """The control plane could not be reached to fetch from (no session, or every try broke off)."""


class DigestMismatch(CacheError):
    """The bytes received for a digest hash to something else; the download was deleted."""


class IncompleteTransfer(CacheError):
    """The stream ended before the announced size; the partial file is kept for a resume."""


def bento_tag_of(archive: str | os.PathLike) -> str:
    """name:version from the bento.yaml inside an archive."""
    try:
        return read_bento_info(archive)["tag"]
    except ValueError as e:
        raise CacheError(str(e)) from None


def _dir_size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:
            pass
    return total


class BentoCache:
    SUFFIX = ".bento"  # of the verified files under blobs/
    IMPORTS = True  # blobs are `bentoml import`ed into bentoml_home (ArtifactCache: unpacked instead)

    def __init__(self, cache_dir: str | os.PathLike, max_bytes: int, bentoml_home: str | os.PathLike | None = None):
        self.root = Path(cache_dir).resolve()
        self.blobs = self.root / "blobs"
        self.partial = self.root / "partial"
        self.bentoml_home = Path(bentoml_home).resolve() if bentoml_home else self.root / "bentoml"
        for d in (self.blobs, self.partial, *([self.bentoml_home] if self.IMPORTS else [])):
            d.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._index_path = self.root / "index.json"
        self._lock = threading.RLock()
        self._in_use: dict[str, int] = {}
        self._index: dict[str, dict] = self._load_index()

    # -- index --------------------------------------------------------------------------------
    def _load_index(self) -> dict:
        try:
            index = json.loads(self._index_path.read_text())
        except (OSError, ValueError):
            index = {}
        # Keep only entries whose archive is here; adopt archives the index lost.
        index = {d: e for d, e in index.items() if (self.blobs / f"{d}{self.SUFFIX}").is_file()}
        for p in self.blobs.glob(f"*{self.SUFFIX}"):
            if p.stem not in index and _HEX64.match(p.stem):
                index[p.stem] = {"size": p.stat().st_size, "last_used": p.stat().st_mtime}
        return index

    def _save_index(self) -> None:
        tmp = self._index_path.with_name("index.json.tmp")
        tmp.write_text(json.dumps(self._index, indent=1, sort_keys=True))
        os.replace(tmp, self._index_path)

    def _touch(self, digest: str) -> None:
        self._index[digest]["last_used"] = time.time()

    # -- queries ------------------------------------------------------------------------------
    def path(self, digest: str) -> Path:
        return self.blobs / f"{parse_digest(digest)}{self.SUFFIX}"

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def resume_offset(self, digest: str) -> int:
        """Bytes already held for this digest: where a transfer resumes (its size if complete)."""
        d = parse_digest(digest)
        if self.has(d):
            return self.path(d).stat().st_size
        part = self.partial / f"{d}.part"
        return part.stat().st_size if part.exists() else 0

    def entry_bytes(self, digest: str) -> int:
        e = self._index.get(parse_digest(digest), {})
        return int(e.get("size", 0)) + int(e.get("imported_size", 0))

    def total_bytes(self) -> int:
        with self._lock:
            return sum(self.entry_bytes(d) for d in self._index)

    def entries(self) -> dict[str, dict]:
        with self._lock:
            return {d: {**e, "in_use": self._in_use.get(d, 0)} for d, e in self._index.items()}

    def in_use(self, digest: str) -> bool:
        return self._in_use.get(parse_digest(digest), 0) > 0

    # -- transfer -----------------------------------------------------------------------------
    def put(self, digest: str, chunks: Iterable[bytes], *, offset: int = 0, size: int | None = None) -> Path:
        """Write a stream of chunks starting at `offset` into the partial file for `digest`.

        Returns the verified archive path once complete.  With `size`, a stream that ends short raises
        IncompleteTransfer and keeps the partial file; without it the end of the stream is the end of the
        file.  If the chunk iterator raises (a broken transfer), what was written stays for a resume.
        """
        d = parse_digest(digest)
        with self._lock:
            if self.has(d):
                self._touch(d)
                self._save_index()
                return self.path(d)
        part = self.partial / f"{d}.part"
        held = part.stat().st_size if part.exists() else 0
        if offset > held:
            raise CacheError(f"cannot resume sha256:{d} at byte {offset}: only {held} bytes are held")
        with open(part, "r+b" if part.exists() else "wb", buffering=0) as f:
            f.truncate(offset)
            f.seek(offset)
            written = offset
            for chunk in chunks:
                if size is not None and written + len(chunk) > size:
                    f.close()
                    part.unlink(missing_ok=True)
                    raise DigestMismatch(f"bento sha256:{d}: received more than the announced {size} bytes; "
                                         "the download was deleted")
                f.write(chunk)
                written += len(chunk)
            os.fsync(f.fileno())
        if size is not None and written < size:
            raise IncompleteTransfer(f"bento sha256:{d}: transfer ended at byte {written} of {size}; "
                                     "the partial file is kept, resume from there")
        got = file_sha256(part)
        if got != d:
            part.unlink(missing_ok=True)
            raise DigestMismatch(f"bento sha256:{d} failed verification: the {written} bytes received hash to "
                                 f"sha256:{got}; the corrupt download was deleted, fetch it again")
        dest = self.path(d)
        os.replace(part, dest)
        with self._lock:
            self._index[d] = {"size": dest.stat().st_size, "last_used": time.time()}
            self._save_index()
            self.evict(keep={d})
        return dest

    def put_file(self, digest: str, path: str | os.PathLike) -> Path:
        """Store a local file under a digest (verified like any transfer)."""
        with open(path, "rb") as f:
            return self.put(digest, iter(lambda: f.read(CHUNK_SIZE), b""), size=os.fstat(f.fileno()).st_size)

    def fetch(self, digest: str, size: int, read_range: Callable[[int, int], bytes], *, chunk_size: int = CHUNK_SIZE,
              attempts: int = 5, retry_delay: float = 0.5) -> Path:
        """Download `digest` with `read_range(offset, length) -> bytes` (a range request to the control plane),
        resuming after a failure at the bytes already held; up to `attempts` tries."""
        d = parse_digest(digest)
        last: Exception | None = None
        for attempt in range(attempts):
            if self.has(d):
                return self.put(d, [], size=size)
            offset = self.resume_offset(d)

            def stream(pos=offset):
                while pos < size:
                    block = read_range(pos, min(chunk_size, size - pos))
                    if not block:
                        return
                    yield block
                    pos += len(block)

            try:
                return self.put(d, stream(), offset=offset, size=size)
            except DigestMismatch:
                raise
            except (OSError, ConnectionError, TimeoutError, IncompleteTransfer) as exc:
                last = exc
                log.warning("fetch of sha256:%s interrupted at byte %d (%r); resuming", d, self.resume_offset(d), exc)
                time.sleep(retry_delay * (attempt + 1))
        raise CacheError(f"could not fetch bento sha256:{d} after {attempts} attempts: {last}")

    # -- import, use, evict ---------------------------------------------------------------------
    def _bento_dir(self, tag: str) -> Path:
        name, _, version = tag.partition(":")
        return self.bentoml_home / "bentos" / name / version

    def import_bento(self, digest: str) -> str:
        """`bentoml import` the archive into the node-local BENTOML_HOME (once); returns its tag."""
        d = parse_digest(digest)
        with self._lock:
            if not self.has(d):
                raise CacheError(f"bento sha256:{d} is not in the node cache; fetch it first")
            entry = self._index.setdefault(d, {"size": self.path(d).stat().st_size, "last_used": time.time()})
            tag = entry.get("tag") or bento_tag_of(self.path(d))
            bdir = self._bento_dir(tag)
            if entry.get("imported") and bdir.joinpath("bento.yaml").is_file():
                return tag
            for other, e in self._index.items():  # the same tag imported from other bytes
                if other != d and e.get("tag") == tag and e.get("imported"):
                    if self._in_use.get(other):
                        raise CacheError(f"bento {tag} from sha256:{other} is in use; cannot import sha256:{d} as the same tag")
                    e["imported"] = False
                    e.pop("imported_size", None)
            if bdir.exists():
                shutil.rmtree(bdir)
            proc = subprocess.run([*bentoml_cli(), "import", str(self.path(d))], env=bentoml_env(self.bentoml_home),
                                  capture_output=True, text=True, timeout=IMPORT_TIMEOUT_S, stdin=subprocess.DEVNULL)
            if proc.returncode != 0 or not bdir.joinpath("bento.yaml").is_file():
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
                raise CacheError(f"bentoml import of sha256:{d} ({tag}) failed (exit {proc.returncode}):\n{tail}")
            entry.update(tag=tag, imported=True, imported_size=_dir_size(bdir), last_used=time.time())
            self._save_index()
            self.evict(keep={d})
            return tag

    def pin(self, digest: str) -> None:
        """Count one more user of this bento: it is not evicted while pinned."""
        d = parse_digest(digest)
        with self._lock:
            self._in_use[d] = self._in_use.get(d, 0) + 1

    def acquire(self, digest: str) -> str:
        """Import if needed and pin: the bento is not evicted until `release`.  Returns its tag."""
        d = parse_digest(digest)
        with self._lock:
            self.pin(d)
            try:
                tag = self.import_bento(d)
            except BaseException:
                self.release(d)
                raise
            self._touch(d)
            self._save_index()
            return tag

    def release(self, digest: str) -> None:
        d = parse_digest(digest)
        with self._lock:
            n = self._in_use.get(d, 0) - 1
            if n > 0:
                self._in_use[d] = n
            else:
                self._in_use.pop(d, None)
            if d in self._index:
                self._touch(d)
                self._save_index()
            self.evict()

    def remove(self, digest: str) -> None:
        d = parse_digest(digest)
        with self._lock:
            if self._in_use.get(d):
                raise CacheError(f"bento sha256:{d} is in use by a replica")
            e = self._index.pop(d, {})
            if e.get("imported") and e.get("tag"):
                bdir = self._bento_dir(e["tag"])
                shutil.rmtree(bdir, ignore_errors=True)
                try:
                    bdir.parent.joinpath("latest").unlink(missing_ok=True)
                    bdir.parent.rmdir()
                except OSError:
                    pass
            self.path(d).unlink(missing_ok=True)
            self._save_index()

    def evict(self, keep: set[str] | frozenset = frozenset()) -> list[str]:
        """Drop least recently used bentos that are not in use (nor in `keep`) until within max_bytes."""
        evicted = []
        with self._lock:
            total = self.total_bytes()
            if total <= self.max_bytes:
                return evicted
            for d in sorted(self._index, key=lambda x: self._index[x].get("last_used", 0)):
                if total <= self.max_bytes:
                    break
                if d in keep or self._in_use.get(d):
                    continue
                total -= self.entry_bytes(d)
                self.remove(d)
                evicted.append(d)
                log.info("evicted bento sha256:%s from the node cache", d)
        return evicted
