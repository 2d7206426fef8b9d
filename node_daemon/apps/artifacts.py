"""App artifacts on the node: blobs fetched by digest (FetchBlob), verified, kept in an LRU cache
like bentos (the same transfer and eviction: node_daemon/replicas/cache.py), and unpacked once.

    cache = ArtifactCache(data_dir / "artifacts", max_bytes)
    tree = cache.unpack(digest, directory=True, name="apps")   # a tar, unpacked once per digest
    cache.place(tree, workdir)                                  # copied into an instance's working dir

A working directory gets a copy, not a link: a program may write beside its files, and the cached
tree must stay as it was verified for the next instance.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

from node_daemon.replicas.cache import BentoCache, CacheError
from stratum.digests import parse_digest


class ArtifactCache(BentoCache):
    SUFFIX = ".blob"
    IMPORTS = False

    def __init__(self, cache_dir: str | os.PathLike, max_bytes: int):
        super().__init__(cache_dir, max_bytes)
        self.trees = self.root / "trees"
        self.trees.mkdir(exist_ok=True)

    def unpack(self, digest: str, *, directory: bool, name: str) -> Path:
        """The artifact as a tree: <trees>/<digest>/ holding the directory's contents, or the file as
        `name`. Unpacked once; a half-unpacked tree (daemon killed meanwhile) is done again."""
        d = parse_digest(digest)
        with self._lock:
            if not self.has(d):
                raise CacheError(f"artifact sha256:{d} is not in the node cache; fetch it first")
            tree = self.trees / d
            done = tree.with_name(d + ".done")
            if done.exists() and tree.is_dir():
                self._touch(d)
                return tree
            shutil.rmtree(tree, ignore_errors=True)
            tree.mkdir()
            if directory:
                try:
                    with tarfile.open(self.path(d)) as tar:
                        tar.extractall(tree, filter="data")  # no absolute paths, links out, devices
                except (tarfile.TarError, OSError) as e:
                    shutil.rmtree(tree, ignore_errors=True)
                    raise CacheError(f"artifact sha256:{d} is not a tar of a directory: {e}") from None
            else:
                shutil.copy2(self.path(d), tree / name)
            size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
            self._index[d].update(imported=True, imported_size=size)
            done.touch()
            self._save_index()
            return tree

    @staticmethod
    def place(tree: Path, workdir: Path) -> None:
        """Copy the tree's contents into a working directory (over what an earlier copy left)."""
        shutil.copytree(tree, workdir, dirs_exist_ok=True, symlinks=True)

    def remove(self, digest: str) -> None:
        d = parse_digest(digest)
        with self._lock:
            if self._in_use.get(d):
                raise CacheError(f"artifact sha256:{d} is in use by an app")
            shutil.rmtree(self.trees / d, ignore_errors=True)
            (self.trees / (d + ".done")).unlink(missing_ok=True)
            self._index.pop(d, None)
            self.path(d).unlink(missing_ok=True)
            self._save_index()
