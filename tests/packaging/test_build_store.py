"""Building bentos from a model artifact, and the control plane's content-addressed store."""

from __future__ import annotations

import hashlib
import tarfile

import pytest

from control_plane.packaging.build import BuildError, build_bento, canonicalize, read_bento_info, run_bentoml, tag_part
from control_plane.packaging.store import ArtifactNotFound, ArtifactStore, DigestMismatch
from stratum.digests import file_sha256


def test_build_produces_a_bento_archive_with_the_model_inside(built, artifact):
    art, home = built
    assert art.tag == "congestion:v1"
    data = open(art.path, "rb").read()
    assert art.sha256 == hashlib.sha256(data).hexdigest() and art.size_bytes == len(data)
    with tarfile.open(art.path, "r:xz") as tar:
        names = {m.name.lstrip("./") for m in tar.getmembers()}
        assert {"bento.yaml", "src/service.py", "src/model/model.joblib", "src/model/metadata.json",
                "env/python/requirements.txt"} <= names
        assert {m.mtime for m in tar.getmembers()} == {0}
        bento_yaml = tar.extractfile("./bento.yaml").read().decode()
        reqs = tar.extractfile("./env/python/requirements.txt").read().decode()
    assert "creation_time: '1970-01-01T00:00:00+00:00'" in bento_yaml
    assert "scikit-learn==" in reqs and "bentoml==1.4.39" in reqs
    assert open(artifact / "model.joblib", "rb").read() == _member(art.path, "src/model/model.joblib")
    assert read_bento_info(art.path)["tag"] == "congestion:v1"
    assert (home / "bentos" / "congestion" / "v1" / "bento.yaml").is_file()  # left for profiling


def _member(path, name):
    with tarfile.open(path, "r:xz") as tar:
        return tar.extractfile("./" + name).read()


def test_same_inputs_give_the_same_digest(built, artifact, tmp_path):
    art, _ = built
    again = build_bento(artifact, "congestion", "v1", tmp_path / "other-home", tmp_path / "work")
    assert again.sha256 == art.sha256
    assert again.artifact_sha256 == art.artifact_sha256


def test_the_archive_is_what_bentoml_export_gives_made_canonical(built, tmp_path):
    """build_bento archives the bento's directory itself rather than run `bentoml export`: the bytes
    must be the same (a BentoML upgrade that changes what export writes shows up here)."""
    art, home = built
    raw = tmp_path / "exported.bento"
    run_bentoml(["export", art.tag, str(raw)], home)
    canonicalize(raw, tmp_path / "canonical.bento")
    assert file_sha256(tmp_path / "canonical.bento") == art.sha256


def test_a_directory_without_a_model_is_rejected(tmp_path):
    (tmp_path / "art").mkdir()
    (tmp_path / "art" / "metadata.json").write_text("{}")
    with pytest.raises(BuildError, match="not a model artifact: missing model.joblib"):
        build_bento(tmp_path / "art", "x", "v1", tmp_path / "home", tmp_path / "work")
    with pytest.raises(ValueError, match="invalid"):
        build_bento(tmp_path / "art", "Bad Name", "v1", tmp_path / "home", tmp_path / "work")
    assert tag_part("Traffic Congestion/Model #1") == "traffic-congestion-model-1"


def test_store_by_digest_with_range_reads(built, tmp_path):
    art, _ = built
    store = ArtifactStore(tmp_path / "cp")
    digest = store.put(art.path)
    assert digest == art.sha256
    assert store.path(digest) == (tmp_path / "cp" / "artifacts" / "sha256" / digest[:2] / digest).resolve()
    assert store.put(art.path) == digest and store.list() == [digest]  # stored once
    data = open(art.path, "rb").read()
    assert store.size(digest) == len(data)
    # Ranges, as a resumable transfer asks for them.
    assert store.read(digest, 0, 100) == data[:100]
    assert store.read(digest, 1000, 517) == data[1000:1517]
    assert store.read(digest, len(data) - 10, 4096) == data[-10:]
    assert store.read(digest, len(data) + 5, 10) == b""
    chunks = list(store.chunks(f"sha256:{digest}", offset=3000, chunk_size=1024))
    assert chunks[0][0] == 3000 and all(off == 3000 + i * 1024 for i, (off, _) in enumerate(chunks))
    assert b"".join(c for _, c in chunks) == data[3000:]
    assert store.verify(digest)
    store.put_metadata(digest, {"tag": art.tag, "profile": {"rss_bytes": 1}})
    assert store.metadata(digest)["tag"] == art.tag and store.list() == [digest]
    # Rot on disk is detected.
    p = store.path(digest)
    p.chmod(0o644)
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    p.write_bytes(bytes(raw))
    assert not store.verify(digest)


def test_store_errors_are_clear(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(ValueError, match="not a sha256 digest"):
        store.path("../../etc/passwd")
    with pytest.raises(ArtifactNotFound, match="is not in the store"):
        store.read("0" * 64, 0, 10)
    with pytest.raises(DigestMismatch, match="not stored"):
        store.put_stream([b"hello"], expected="1" * 64)
    assert store.list() == [] and not list(store.root.glob("**/.tmp-*"))
    assert store.put_stream([b"hel", b"lo"], expected=hashlib.sha256(b"hello").hexdigest()) == hashlib.sha256(b"hello").hexdigest()
