"""An app's artifact: the same tree always has the same digest, a changed one another (pure)."""

from __future__ import annotations

import io
import os
import shutil
import tarfile

import pytest

from provider import artifact as art


def make_tree(root, order=("b.txt", "a/x.py", "a/y/z.sh")) -> None:
    contents = {"b.txt": b"bee\n", "a/x.py": b"print('x')\n", "a/y/z.sh": b"#!/bin/sh\necho z\n"}
    for rel in order:  # creation order differs between trees; the tar must not
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(contents[rel])
    (root / "a/y/z.sh").chmod(0o755)
    (root / "empty").mkdir(exist_ok=True)
    if not (root / "link").is_symlink():
        os.symlink("b.txt", root / "link")


def test_same_tree_same_digest_whatever_mtimes_and_creation_order(tmp_path):
    one, two = tmp_path / "one" / "app", tmp_path / "two" / "app"
    make_tree(one)
    make_tree(two, order=("a/y/z.sh", "b.txt", "a/x.py"))
    for i, f in enumerate(sorted(two.rglob("*"))):
        if not f.is_symlink():
            os.utime(f, (1_000_000 + i * 977, 2_000_000 + i * 31))
    a1, a2 = art.inspect(str(one)), art.inspect(str(two))
    assert a1.directory and a1.name == "app"
    assert (a1.sha256, a1.size) == (a2.sha256, a2.size)
    assert art.inspect(str(one)).sha256 == a1.sha256  # and again


def test_a_hard_link_is_packed_as_the_file_it_is(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    make_tree(one)
    make_tree(two)
    (two / "b2.txt").write_bytes(b"bee\n")
    os.link(one / "b.txt", one / "b2.txt")
    assert art.inspect(str(one)).sha256 == art.inspect(str(two)).sha256


@pytest.mark.parametrize("change", ["content", "mode", "rename", "new file", "new directory", "link target"])
def test_a_changed_tree_has_another_digest(tmp_path, change):
    root = tmp_path / "app"
    make_tree(root)
    before = art.inspect(str(root)).sha256
    if change == "content":
        (root / "a/x.py").write_bytes(b"print('y')\n")
    elif change == "mode":
        (root / "b.txt").chmod(0o600)
    elif change == "rename":
        (root / "b.txt").rename(root / "c.txt")
    elif change == "new file":
        (root / "empty/new").write_bytes(b"")
    elif change == "new directory":
        (root / "empty/sub").mkdir()
    else:
        (root / "link").unlink()
        os.symlink("a/x.py", root / "link")
    assert art.inspect(str(root)).sha256 != before


def test_the_tar_holds_the_tree_relative_to_the_directory_with_no_owner_or_time(tmp_path):
    root = tmp_path / "app"
    make_tree(root)
    buf = io.BytesIO()
    art.pack(str(root), buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        members = tar.getmembers()
        names = [t.name for t in members]
        assert names == ["a", "a/x.py", "a/y", "a/y/z.sh", "b.txt", "empty", "link"]
        assert all(t.mtime == 0 and t.uid == 0 and t.gid == 0 and t.uname == "" and t.gname == "" for t in members)
        assert tar.getmember("a/y/z.sh").mode == 0o755 and tar.getmember("link").linkname == "b.txt"
        assert tar.extractfile("a/x.py").read() == b"print('x')\n"


def test_blob_file_is_the_tar_inspect_hashed(tmp_path):
    root = tmp_path / "app"
    make_tree(root)
    local = art.inspect(str(root))
    with art.blob_file(local) as (path, sha, size):
        assert (sha, size) == (local.sha256, local.size) and os.path.getsize(path) == size
    assert not os.path.exists(path)  # the temporary tar is gone


def test_a_single_file(tmp_path):
    (tmp_path / "job.py").write_bytes(b"print(1)\n")
    local = art.inspect("job.py", cwd=str(tmp_path))
    assert not local.directory and local.name == "job.py" and local.size == 9
    with art.blob_file(local) as (path, sha, _):
        assert path == str(tmp_path / "job.py") and sha == local.sha256


def test_missing_and_unusable_paths_name_the_artifact(tmp_path):
    with pytest.raises(art.ArtifactError) as e:
        art.inspect("apps/missing", cwd=str(tmp_path))
    assert e.value.summary == "Artifact not found" and "apps/missing" in str(e.value)
    assert "Terraform working directory" in str(e.value)
    fifo = tmp_path / "app" / "pipe"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    with pytest.raises(art.ArtifactError) as e:
        art.inspect(str(fifo.parent))
    assert "pipe" in str(e.value) and "neither a file, a directory nor a symbolic link" in str(e.value)
    shutil.rmtree(fifo.parent)


def test_pycache_directories_are_left_out(tmp_path):
    """Importing the artifact's modules (a test, an editor) writes __pycache__ into the tree: the
    digest stays the same, and the tar holds no .pyc."""
    root = tmp_path / "app"
    make_tree(root)
    before = art.inspect(str(root)).sha256
    for where in (root, root / "a"):
        (where / "__pycache__").mkdir()
        (where / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\x00compiled")
    assert art.inspect(str(root)).sha256 == before
    buf = io.BytesIO()
    art.pack(str(root), buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        assert not [n for n in tar.getnames() if "__pycache__" in n]
    (root / "__pycache__.py").write_bytes(b"")  # only directories of that name are skipped
    assert art.inspect(str(root)).sha256 != before
