"""Datasets over the real API: chunked upload with a digest, file and SQL sources, versions, bad input."""

from __future__ import annotations

import hashlib
import sqlite3

import grpc
import pytest

from stratum.v1 import control_plane_pb2_grpc as cp_grpc, datasets_pb2 as ds
from tests.control_plane.test_api import violations

CSV = b"hour,cars,weather,congested\n" + b"".join(
    f"{h % 24},{(h * 37) % 200},{['dry', 'rain'][h % 2]},{int((h * 37) % 200 > 100)}\n".encode() for h in range(60))


def upload(client, data: bytes, chunk: int = 1000, sha: str | None = None, size: int | None = None) -> ds.Blob:
    sha = sha or hashlib.sha256(data).hexdigest()

    def messages():
        yield ds.UploadBlobRequest(header=ds.BlobHeader(sha256=sha, size=len(data) if size is None else size))
        for i in range(0, len(data), chunk):
            yield ds.UploadBlobRequest(chunk=data[i:i + chunk])

    return client.stub.UploadBlob(messages(), metadata=client.md, timeout=30)


def test_file_dataset_upload_describe_and_new_version(control_plane):
    c = control_plane.client()
    blob = upload(c, CSV)
    assert (blob.sha256, blob.size) == (hashlib.sha256(CSV).hexdigest(), len(CSV))
    assert c.GetBlob(ds.GetBlobRequest(sha256=blob.sha256)).size == len(CSV)
    spec = ds.DatasetSpec(name="traffic", source="file://data/traffic.csv", blob_sha256=blob.sha256, target="congested")
    d = c.CreateDataset(spec)
    assert [(col.name, col.type) for col in d.columns] == [("hour", "integer"), ("cars", "integer"), ("weather", "string"), ("congested", "integer")]
    assert (d.row_count, d.version, d.digest) == (60, 1, "sha256:" + blob.sha256)
    assert c.CreateDataset(spec).digest == d.digest  # idempotent

    changed = CSV + b"3,7,dry,0\n"
    spec2 = ds.DatasetSpec(name="traffic", source="file://data/traffic.csv", blob_sha256=upload(c, changed).sha256, target="congested")
    with pytest.raises(grpc.RpcError) as e:
        c.CreateDataset(spec2)
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
    d2 = c.UpdateDataset(spec2)
    assert (d2.row_count, d2.version) == (61, 2)
    assert c.GetDataset(ds.GetDatasetRequest(name="traffic")).version == 2
    c.DeleteDataset(ds.DeleteDatasetRequest(name="traffic"))
    with pytest.raises(grpc.RpcError) as e:
        c.GetDataset(ds.GetDatasetRequest(name="traffic"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_sql_dataset(control_plane, tmp_path):
    db = tmp_path / "readings.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE r (sensor TEXT, value REAL)")
        conn.executemany("INSERT INTO r VALUES (?, ?)", [(f"s{i % 3}", i * 0.5) for i in range(20)])
    c = control_plane.client()
    d = c.CreateDataset(ds.DatasetSpec(name="readings", source=f"sqlite:///{db}", query="SELECT sensor, value FROM r WHERE value > 2"))
    assert (d.row_count, [(x.name, x.type) for x in d.columns]) == (15, [("sensor", "string"), ("value", "float")])
    assert d.digest.startswith("sha256:")


def test_upload_with_wrong_digest_or_size_stores_nothing(control_plane):
    c = control_plane.client()
    wrong = "0" * 64
    with pytest.raises(grpc.RpcError) as e:
        upload(c, CSV, sha=wrong)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "header.sha256" in violations(e.value)
    with pytest.raises(grpc.RpcError) as e:
        upload(c, CSV, size=len(CSV) + 5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "received" in violations(e.value)["header.size"]
    for sha in (wrong, hashlib.sha256(CSV).hexdigest()):
        with pytest.raises(grpc.RpcError) as e:
            c.GetBlob(ds.GetBlobRequest(sha256=sha))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("spec, field, text", [
    (ds.DatasetSpec(name="x", source="ftp://host/f.csv"), "source", "unsupported source"),
    (ds.DatasetSpec(name="x", source="file://data/f.txt", blob_sha256="a" * 64), "source", "cannot tell the format"),
    (ds.DatasetSpec(name="x", source="file://f.csv"), "blob_sha256", "UploadBlob first"),
    (ds.DatasetSpec(name="x", source="sqlite:///x.db"), "query", "needs a query"),
    (ds.DatasetSpec(name="x", source="file://f.csv", format="xml", blob_sha256="a" * 64), "format", "unknown format 'xml'"),
    (ds.DatasetSpec(name="Bad Name", source="sqlite:///x.db", query="select 1"), "name", "invalid name"),
])
def test_invalid_dataset_specs(module_control_plane, spec, field, text):
    c = module_control_plane.client()
    for call in (c.ValidateDataset, c.CreateDataset):
        with pytest.raises(grpc.RpcError) as e:
            call(spec)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert text in violations(e.value)[field]


@pytest.mark.parametrize("data, target, field, text", [
    (b"", "", "source", "file is empty"),
    (b"a,b\n1,2\n3,4,5\n", "", "source", "f.csv"),
    (CSV, "speed", "target", "column 'speed' is not in the dataset"),
])
def test_bad_files_create_nothing(module_control_plane, data, target, field, text):
    c = module_control_plane.client()
    sha = upload(c, data).sha256
    with pytest.raises(grpc.RpcError) as e:
        c.CreateDataset(ds.DatasetSpec(name="bad", source="file://f.csv", blob_sha256=sha, target=target))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert text in violations(e.value)[field]
    with pytest.raises(grpc.RpcError) as e:
        c.GetDataset(ds.GetDatasetRequest(name="bad"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_missing_upload_is_a_failed_precondition(control_plane):
    c = control_plane.client()
    with pytest.raises(grpc.RpcError) as e:
        c.CreateDataset(ds.DatasetSpec(name="ghost", source="file://f.csv", blob_sha256="b" * 64))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "was not uploaded" in e.value.details()


def test_upload_needs_the_admin_token(control_plane):
    with control_plane.channel() as ch:
        with pytest.raises(grpc.RpcError) as e:
            cp_grpc.ControlPlaneStub(ch).UploadBlob(iter([ds.UploadBlobRequest(header=ds.BlobHeader(sha256="a" * 64))]), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
