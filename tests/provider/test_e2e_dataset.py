"""stratum_dataset with real terraform against a real control plane."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import grpc
import pytest

from stratum.v1 import datasets_pb2 as ds
from tests.provider.tfharness import Step, run_steps

pytestmark = pytest.mark.e2e

ADDR = "stratum_dataset.traffic"
COLUMNS = [{"name": "hour", "type": "integer"}, {"name": "cars", "type": "integer"},
           {"name": "weather", "type": "string"}, {"name": "congested", "type": "integer"}]


def traffic_csv(rows: int) -> bytes:
    return b"hour,cars,weather,congested\n" + b"".join(
        f"{h % 24},{(h * 37) % 200},{['dry', 'rain'][h % 2]},{int((h * 37) % 200 > 100)}\n".encode() for h in range(rows))


def write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def server_dataset(admin, name: str):
    try:
        return admin.GetDataset(ds.GetDatasetRequest(name=name))
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e
        return None


def dataset_cfg(name: str = "traffic", source: str = "file://data/traffic.csv", **extra: str) -> str:
    lines = [f'  name   = "{name}"', f'  source = "{source}"'] + [f'  {k} = "{v}"' for k, v in extra.items()]
    return 'resource "stratum_dataset" "traffic" {\n' + "\n".join(lines) + "\n}\n"


def test_file_dataset_apply_import_change_and_destroy(ws, admin):
    csv = ws.dir / "data" / "traffic.csv"
    sha1 = write(csv, traffic_csv(40))
    cfg = ws.provider + dataset_cfg(target="congested") + 'output "columns" {\n  value = [for c in stratum_dataset.traffic.columns : c.name]\n}\n'

    def created(ws):
        s = ws.resources()[ADDR]
        assert s["id"] == s["name"] == "traffic"
        assert s["source"] == "file://data/traffic.csv" and s["target"] == "congested" and s["format"] is None
        assert s["columns"] == COLUMNS and s["row_count"] == 40 and s["version"] == 1
        assert s["file_sha256"] == sha1 and s["digest"] == "sha256:" + sha1
        assert ws.outputs()["columns"] == ["hour", "cars", "weather", "congested"]
        srv = server_dataset(admin, "traffic")
        assert (srv.digest, srv.row_count, srv.version, srv.spec.blob_sha256) == (s["digest"], 40, 1, sha1)
        assert srv.spec.source == "file://data/traffic.csv"  # files are sent as written: the bytes travel in the upload
        assert admin.GetBlob(ds.GetBlobRequest(sha256=sha1)).size == csv.stat().st_size

    run_steps(ws, [Step(cfg, check=created, import_address=ADDR, import_id="traffic")])

    # The file changes, the configuration does not: plan shows an in-place update.
    sha2 = write(csv, traffic_csv(45))
    res = ws.plan()
    assert res.rc == 2, res.output
    assert "stratum_dataset.traffic will be updated in-place" in res.stdout, res.stdout
    assert f'~ file_sha256 = "{sha1}" -> "{sha2}"' in res.stdout, res.stdout
    assert "~ version" in res.stdout and "(known after apply)" in res.stdout

    # Changed again between a saved plan and its apply: Terraform refuses the stale plan, nothing is loaded.
    ws.tf("plan", "-no-color", "-input=false", "-out=saved.tfplan")
    sha3 = write(csv, traffic_csv(50))
    res = ws.tf("apply", "-no-color", "-input=false", "saved.tfplan", check=False)
    assert res.rc == 1 and "inconsistent final plan" in res.output and ".file_sha256" in res.output, res.output
    assert server_dataset(admin, "traffic").version == 1 and ws.resources()[ADDR]["version"] == 1

    def reloaded(ws):
        s = ws.resources()[ADDR]
        assert (s["version"], s["row_count"], s["file_sha256"], s["digest"]) == (2, 50, sha3, "sha256:" + sha3)
        assert server_dataset(admin, "traffic").version == 2

    run_steps(ws, [Step(cfg, check=reloaded)])

    ws.destroy()
    assert ws.resources() == {}
    assert server_dataset(admin, "traffic") is None


def test_sqlite_query_dataset(ws, admin):
    db = ws.dir / "readings.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE r (sensor TEXT, value REAL)")
        conn.executemany("INSERT INTO r VALUES (?, ?)", [(f"s{i % 3}", i * 0.5) for i in range(20)])
    conn.close()
    cfg = ws.provider + '''
resource "stratum_dataset" "readings" {
  name   = "readings"
  source = "sqlite:///readings.db"
  query  = "SELECT sensor, value FROM r WHERE value > 2"
  target = "value"
}
'''
    addr = "stratum_dataset.readings"

    def created(ws):
        s = ws.resources()[addr]
        assert s["source"] == "sqlite:///readings.db" and s["file_sha256"] is None
        assert (s["row_count"], s["version"]) == (15, 1) and s["digest"].startswith("sha256:")
        assert s["columns"] == [{"name": "sensor", "type": "string"}, {"name": "value", "type": "float"}]
        # The control plane got an absolute path: it does not share the working directory.
        assert server_dataset(admin, "readings").spec.source == f"sqlite:///{ws.dir}/readings.db"

    run_steps(ws, [Step(cfg, check=created, import_address=addr, import_id="readings")])

    # New rows in the database: Terraform cannot see them (documented); -replace reloads.
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO r VALUES ('s9', 100.0)")
    conn.close()
    assert ws.plan().rc == 0
    ws.tf("apply", "-no-color", "-auto-approve", f"-replace={addr}")
    assert ws.resources()[addr]["row_count"] == 16

    # A changed query reloads in place: a new version.
    run_steps(ws, [Step(cfg.replace("value > 2", "value > 5"), check=lambda ws: (
        assert_rows(ws.resources()[addr], rows=10, version=2)))])


def assert_rows(s: dict, rows: int, version: int) -> None:
    assert (s["row_count"], s["version"]) == (rows, version), s


def test_bad_inputs_fail_with_the_attribute_and_create_nothing(ws, admin):
    data = ws.dir / "data"
    write(data / "traffic.csv", traffic_csv(10))
    write(data / "empty.csv", b"")
    write(data / "broken.csv", b"a,b,c\n1,2,3\n4,5,6,7\n")
    cases = [
        (dataset_cfg(target="nope"), False,
         ["Error: Invalid target", 'target = "nope"', "column 'nope' is not in the dataset", "hour, cars, weather, congested"]),
        (dataset_cfg(source="file://data/empty.csv"), False,
         ["Error: Invalid source", "data/empty.csv: file is empty"]),
        (dataset_cfg(source="file://data/broken.csv"), False,
         ["Error: Invalid source", "data/broken.csv: line 3: expected 3 fields, saw 4"]),
        (dataset_cfg(source="file://data/missing.csv"), True,
         ["Error: Local file not found", f"no such file: {data / 'missing.csv'}", 'source = "file://data/missing.csv"']),
        (dataset_cfg(format="xml"), True,
         ["Error: Invalid format", "unknown format 'xml'", "csv, parquet, excel"]),
        (dataset_cfg(source="file://data/traffic.json"), True,
         ["Error: Invalid source", "cannot tell the format from the extension '.json'"]),
    ]
    write(data / "traffic.json", b'{"a": 1}\n')
    for cfg, plan_only, errors in cases:
        ws.write(ws.provider + cfg)
        res = ws.plan(check=False) if plan_only else ws.apply(check=False)
        assert res.rc == 1, res.output
        said = " ".join(res.output.split())  # terraform wraps long lines
        for text in errors:
            assert text in said, f"{text!r} not in:\n{res.output}"
        assert "Traceback" not in res.output and "Internal error" not in res.output, res.output
        assert server_dataset(admin, "traffic") is None, cfg
    assert ws.resources() == {}

    # The name is taken by a dataset made outside Terraform from another source: refused, left alone.
    db = ws.dir / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t AS SELECT 1 AS x")
    conn.close()
    admin.CreateDataset(ds.DatasetSpec(name="other", source=f"sqlite:///{db}", query="SELECT x FROM t"))
    ws.write(ws.provider + dataset_cfg(name="other"))
    res = ws.apply(check=False)
    assert res.rc == 1 and "Dataset name taken" in res.output and "terraform import" in res.output, res.output
    other = server_dataset(admin, "other")
    assert (other.spec.source, other.version, other.row_count) == (f"sqlite:///{db}", 1, 1)
