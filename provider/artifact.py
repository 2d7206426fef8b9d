"""An app's `artifact`: a local file, or a directory packed as a deterministic tar, by sha256.

The digest is computed at plan time, so an edited file plans an in-place update although the
configuration did not change; it must be the same for the same tree on every machine and at
every plan. A directory therefore becomes a tar whose bytes depend only on the names, contents
and modes of what it holds: entries sorted by path, mtime 0, uid/gid 0, no owner names, and a
hard link packed as the file it is (whether two names share an inode depends on how the tree
was copied). `__pycache__` directories are left out: Python writes them into a source tree
whenever something imports its modules (a test, an editor), which would change the digest from
one plan to the next although no source changed; an interpreter rebuilds them. Entries are
relative to the directory: nodes unpack them into the app's working directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Optional

from tf.utils import Diagnostics

from provider.resource_dataset import CHUNK


class ArtifactError(Exception):
    """An artifact that cannot be used; str() says why, naming the path."""

    def __init__(self, summary: str, detail: str):
        super().__init__(detail)
        self.summary = summary

    def report(self, diags: Diagnostics) -> None:
        diags.add_error(self.summary, str(self), path=["artifact"])


@dataclass
class LocalArtifact:
    path: str  # absolute
    name: str  # base name, as the node writes it
    directory: bool
    sha256: str
    size: int


class _Digest:
    """A write-only sink that hashes and counts what passes through it (and may copy it on)."""

    def __init__(self, out: Optional[BinaryIO] = None):
        self.hash, self.size, self.out = hashlib.sha256(), 0, out

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        if self.out is not None:
            self.out.write(data)
        return len(data)


def local_path(written: str, cwd: Optional[str] = None) -> str:
    """A path as configured, relative to Terraform's working directory (the provider's cwd)."""
    return os.path.normpath(os.path.join(cwd or os.getcwd(), os.path.expanduser(written)))


# Directory names never packed (see the module's docstring).
SKIPPED_DIRS = frozenset({"__pycache__"})


def _members(root: str) -> list[tuple[str, str]]:
    """(path inside the tar, absolute path) of everything under root but SKIPPED_DIRS, parents
    before children."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):  # symlinked directories are listed, not followed
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS]  # not descended into either
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            out.append((os.path.relpath(full, root).replace(os.sep, "/"), full))
    return sorted(out, key=lambda m: m[0].split("/"))


def _tarinfo(arcname: str, full: str) -> tarfile.TarInfo:
    st = os.lstat(full)
    ti = tarfile.TarInfo(arcname)  # mtime 0, uid/gid 0, no uname/gname
    ti.mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        ti.type = tarfile.DIRTYPE
    elif stat.S_ISREG(st.st_mode):
        ti.size = st.st_size
    elif stat.S_ISLNK(st.st_mode):
        ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(full)
    else:
        raise ArtifactError("Invalid artifact", f"{full} is neither a file, a directory nor a symbolic link; "
                                                "an artifact directory can hold only those")
    return ti


def pack(root: str, out) -> None:
    """Write the deterministic tar of directory `root` to `out` (anything with write(bytes))."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK) as tar:
        for arcname, full in _members(root):
            ti = _tarinfo(arcname, full)
            if ti.isreg():
                with open(full, "rb") as f:
                    tar.addfile(ti, f)
            else:
                tar.addfile(ti)


def _sha256_file(path: str) -> tuple[str, int]:
    d = _Digest()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            d.write(block)
    return d.hash.hexdigest(), d.size


def inspect(written: str, cwd: Optional[str] = None) -> LocalArtifact:
    """The artifact as it would be uploaded now (its sha256 and size), or ArtifactError."""
    if not written:
        raise ArtifactError("Invalid artifact", "artifact needs a path: a file or a directory, e.g. \"apps/broker\".")
    path = local_path(written, cwd)
    if not os.path.exists(path):
        hint = "" if os.path.isabs(os.path.expanduser(written)) else \
            " (a relative path is resolved against the Terraform working directory)"
        raise ArtifactError("Artifact not found", f"{written}: no such file or directory: {path}{hint}.")
    name = os.path.basename(path)
    try:
        if os.path.isdir(path):
            d = _Digest()
            pack(path, d)
            return LocalArtifact(path, name, True, d.hash.hexdigest(), d.size)
        if not os.path.isfile(path):
            raise ArtifactError("Invalid artifact", f"{written}: {path} is neither a file nor a directory.")
        sha, size = _sha256_file(path)
        return LocalArtifact(path, name, False, sha, size)
    except OSError as e:
        raise ArtifactError("Cannot read the artifact", f"{written}: cannot read {e.filename or path}: "
                                                         f"{e.strerror or e}.") from None


@contextlib.contextmanager
def blob_file(art: LocalArtifact) -> Iterator[tuple[str, str, int]]:
    """(path, sha256, size) of the bytes to upload: the file itself, or a temporary tar of the
    directory, packed again now (the caller compares the digest with the planned one)."""
    if not art.directory:
        sha, size = _sha256_file(art.path)
        yield art.path, sha, size
        return
    with tempfile.NamedTemporaryFile(prefix="stratum-artifact-", suffix=".tar") as tmp:
        d = _Digest(tmp)
        try:
            pack(art.path, d)
        except OSError as e:
            raise ArtifactError("Cannot read the artifact", f"cannot read {e.filename or art.path}: {e.strerror or e}.") from None
        tmp.flush()
        yield tmp.name, d.hash.hexdigest(), d.size
