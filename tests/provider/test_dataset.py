"""stratum_dataset in-process: plan-time hashing, sources, upload and state, with a fake control plane client."""

from __future__ import annotations

import hashlib

import grpc
import msgpack
import pytest
from tf.gen import tfplugin_pb2 as pb
from tf.iface import CreateContext, UpdateContext
from tf.utils import Diagnostic, Diagnostics, to_dynamic_value

from provider.client import ApiError
from provider.provider import StratumProvider
from provider.resource_dataset import (CHUNK, DatasetResource, _state, resolved_source, source_as_configured,
                                       upload_messages)
from provider.servicer import StratumServicer
from stratum.v1 import control_plane_pb2, datasets_pb2 as ds

TYPE = "stratum_dataset"
CONFIG = {"id": None, "name": "traffic", "source": "file://data/traffic.csv", "format": None, "query": None, "target": None,
          "file_sha256": None, "digest": None, "columns": None, "row_count": None, "version": None}
CSV = b"hour,cars,congested\n1,20,0\n2,150,1\n"
SHA = hashlib.sha256(CSV).hexdigest()


class FakeClient:
    """Records calls; answers from `answers` (method -> value, exception or function of the request)."""

    def __init__(self, **answers):
        self.answers, self.calls = answers, []

    def call(self, method, request, *, action, attributes=None, timeout=None):
        if callable(request) and method == "UploadBlob":
            request = list(request())
        self.calls.append((method, request))
        answer = self.answers.get(method, control_plane_pb2.ValidateResponse())
        if isinstance(answer, Exception):
            raise answer
        return answer(request) if callable(answer) else answer

    def methods(self):
        return [m for m, _ in self.calls]


def not_found():
    return ApiError(grpc.StatusCode.NOT_FOUND, [Diagnostic.error("Not found", "no")])


def dataset(spec: ds.DatasetSpec, rows=2, version=1, digest=None) -> ds.Dataset:
    return ds.Dataset(spec=spec, digest=digest or "sha256:" + (spec.blob_sha256 or "f" * 64), row_count=rows, version=version,
                      columns=[ds.Column(name="hour", type="integer"), ds.Column(name="congested", type="integer")])


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Terraform's working directory (the provider's cwd) holding data/traffic.csv."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "traffic.csv").write_bytes(CSV)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def servicer(monkeypatch):
    for var in ("STRATUM_ENDPOINT", "STRATUM_TOKEN", "STRATUM_CA_CERT"):
        monkeypatch.delenv(var, raising=False)
    return StratumServicer(StratumProvider())


def plan(servicer, prior, proposed):
    req = pb.PlanResourceChange.Request(type_name=TYPE, prior_state=to_dynamic_value(prior),
                                        proposed_new_state=to_dynamic_value(proposed), config=to_dynamic_value(proposed))
    resp = servicer.PlanResourceChange(req, None)
    planned = msgpack.unpackb(resp.planned_state.msgpack, ext_hook=lambda c, d: "UNKNOWN") if resp.planned_state.msgpack else None
    return resp, planned


def errors_of(resp):
    return [(d.summary, d.detail, [s.attribute_name for s in d.attribute.steps]) for d in resp.diagnostics if d.severity == pb.Diagnostic.ERROR]


STATE = {**CONFIG, "id": "traffic", "file_sha256": SHA, "digest": "sha256:" + SHA, "row_count": 2, "version": 1,
         "columns": [{"name": "hour", "type": "integer"}, {"name": "congested", "type": "integer"}]}


# ---- sources


def test_relative_sqlite_paths_are_made_absolute_against_the_working_directory():
    assert resolved_source("sqlite:///data/r.db", "/work/tf") == "sqlite:////work/tf/data/r.db"
    assert resolved_source("sqlite:////abs/r.db", "/work/tf") == "sqlite:////abs/r.db"
    assert resolved_source("sqlite:///r.db", "/my dir") == "sqlite:////my%20dir/r.db"  # the server unquotes the URL
    for as_written in ("file://data/t.csv", "file:///abs/t.csv", "postgresql://h/db"):
        assert resolved_source(as_written, "/work/tf") == as_written


def test_state_keeps_the_source_as_written_and_import_shows_it_relative():
    assert source_as_configured("sqlite:////work/tf/data/r.db", "sqlite:///data/r.db", "/work/tf") == "sqlite:///data/r.db"
    assert source_as_configured("sqlite:////work/tf/data/r.db", "sqlite:////work/tf/data/r.db", "/work/tf") == "sqlite:////work/tf/data/r.db"
    assert source_as_configured("sqlite:////elsewhere/r.db", "sqlite:///r.db", "/work/tf") == "sqlite:////elsewhere/r.db"  # changed: show it
    assert source_as_configured("sqlite:////work/tf/data/r.db", None, "/work/tf") == "sqlite:///data/r.db"  # import
    assert source_as_configured("sqlite:////other/r.db", None, "/work/tf") == "sqlite:////other/r.db"
    assert source_as_configured("file://data/t.csv", None, "/work/tf") == "file://data/t.csv"


def test_upload_is_a_header_then_chunks_of_at_most_4_mib_made_afresh_for_each_try(tmp_path):
    data = bytes(range(256)) * (CHUNK * 5 // 2 // 256)
    f = tmp_path / "big.csv"
    f.write_bytes(data)
    make = upload_messages(str(f), "ab" * 32, len(data))
    for _ in range(2):  # a retry iterates again from the start
        msgs = list(make())
        assert msgs[0].header.sha256 == "ab" * 32 and msgs[0].header.size == len(data)
        assert all(len(m.chunk) <= 4 * 1024 * 1024 for m in msgs[1:]) and len(msgs) == 4
        assert b"".join(m.chunk for m in msgs[1:]) == data


# ---- plan


def test_create_plan_hashes_the_local_file(servicer, workdir):
    resp, planned = plan(servicer, None, CONFIG)
    assert not resp.diagnostics
    assert planned["id"] == "traffic" and planned["file_sha256"] == SHA
    assert planned["digest"] == planned["columns"] == planned["version"] == "UNKNOWN"


def test_create_plan_checks_with_the_control_plane(servicer, workdir):
    servicer.app.client = FakeClient()
    plan(servicer, None, {**CONFIG, "target": "congested"})
    [(method, spec)] = servicer.app.client.calls
    assert method == "ValidateDataset"
    assert (spec.name, spec.source, spec.blob_sha256, spec.target) == ("traffic", "file://data/traffic.csv", SHA, "congested")


def test_missing_file_is_a_plan_error_on_source_naming_the_path(servicer, workdir):
    resp, _ = plan(servicer, None, {**CONFIG, "source": "file://data/nope.csv"})
    [(summary, detail, path)] = errors_of(resp)
    assert summary == "Local file not found" and path == ["source"]
    assert str(workdir / "data" / "nope.csv") in detail and "working directory" in detail


def test_empty_file_is_a_plan_error(servicer, workdir):
    (workdir / "data" / "empty.csv").write_bytes(b"")
    resp, _ = plan(servicer, None, {**CONFIG, "source": "file://data/empty.csv"})
    assert [(e[0], e[2]) for e in errors_of(resp)] == [("Invalid source", ["source"])]
    assert "data/empty.csv: file is empty" in errors_of(resp)[0][1]


def test_unchanged_file_plans_no_change_and_asks_nothing(servicer, workdir):
    servicer.app.client = FakeClient()
    resp, planned = plan(servicer, STATE, STATE)
    assert not resp.diagnostics and planned == STATE
    assert servicer.app.client.calls == []


def test_changed_file_plans_an_update_with_the_content_unknown(servicer, workdir):
    (workdir / "data" / "traffic.csv").write_bytes(CSV + b"3,90,0\n")
    servicer.app.client = FakeClient()
    resp, planned = plan(servicer, STATE, STATE)
    assert not resp.diagnostics and not resp.requires_replace
    assert planned["file_sha256"] == hashlib.sha256(CSV + b"3,90,0\n").hexdigest()
    assert [planned[k] for k in ("digest", "columns", "row_count", "version")] == ["UNKNOWN"] * 4
    assert servicer.app.client.methods() == ["ValidateDataset"]


def test_target_change_keeps_the_content_known(servicer, workdir):
    resp, planned = plan(servicer, STATE, {**STATE, "target": "congested"})
    assert not resp.diagnostics
    assert (planned["digest"], planned["row_count"], planned["version"]) == (STATE["digest"], 2, 1)


def test_rename_requires_replace(servicer, workdir):
    resp, _ = plan(servicer, STATE, {**STATE, "name": "traffic-2"})
    assert [s.attribute_name for p in resp.requires_replace for s in p.steps] == ["name"]


def test_query_source_has_no_file_hash_and_sends_an_absolute_sqlite_path(servicer, workdir):
    servicer.app.client = FakeClient()
    resp, planned = plan(servicer, None, {**CONFIG, "source": "sqlite:///r.db", "query": "SELECT 1 AS x"})
    assert not resp.diagnostics and planned["file_sha256"] is None
    [(_, spec)] = servicer.app.client.calls
    assert spec.source == f"sqlite:///{workdir}/r.db" and spec.blob_sha256 == ""


def test_password_in_a_database_url_is_a_warning(servicer, workdir):
    resp, _ = plan(servicer, None, {**CONFIG, "source": "postgresql://u:s3cret-pw@db/x", "query": "SELECT 1"})
    [w] = [d for d in resp.diagnostics if d.severity == pb.Diagnostic.WARNING]
    assert "password" in w.summary.lower() and [s.attribute_name for s in w.attribute.steps] == ["source"]
    from provider.errors import redact
    assert redact("postgresql://u:s3cret-pw@db/x") == "postgresql://u:<redacted>@db/x"


# ---- apply


def resource(client):
    provider = StratumProvider()
    provider.client = client
    return DatasetResource(provider)


def planned_state(**over):
    return {**CONFIG, "id": "traffic", "file_sha256": SHA, **over}


def test_create_uploads_a_missing_blob_then_creates(workdir):
    client = FakeClient(GetBlob=not_found(), UploadBlob=ds.Blob(sha256=SHA, size=len(CSV)), CreateDataset=dataset)
    diags = Diagnostics()
    state = resource(client).create(CreateContext(diags, TYPE), planned_state())
    assert not diags.diagnostics
    assert client.methods() == ["GetBlob", "UploadBlob", "CreateDataset"]
    upload = client.calls[1][1]
    assert upload[0].header.sha256 == SHA and b"".join(m.chunk for m in upload[1:]) == CSV
    assert state["file_sha256"] == SHA and state["digest"] == "sha256:" + SHA and state["source"] == "file://data/traffic.csv"
    assert state["columns"] == [{"name": "hour", "type": "integer"}, {"name": "congested", "type": "integer"}]
    assert (state["format"], state["query"], state["target"]) == (None, None, None)


def test_create_skips_the_upload_of_a_stored_blob(workdir):
    client = FakeClient(GetBlob=ds.Blob(sha256=SHA, size=len(CSV)), CreateDataset=dataset)
    resource(client).create(CreateContext(Diagnostics(), TYPE), planned_state())
    assert client.methods() == ["GetBlob", "CreateDataset"]


def test_file_changed_since_plan_is_an_error_and_nothing_is_sent(workdir):
    client = FakeClient()
    diags = Diagnostics()
    assert resource(client).create(CreateContext(diags, TYPE), planned_state(file_sha256="0" * 64)) is None
    [d] = diags.diagnostics
    assert d.summary == "Local file changed since plan" and d.path == ["source"]
    assert client.calls == []


def test_failed_create_records_nothing(workdir):
    err = ApiError(grpc.StatusCode.INVALID_ARGUMENT, [Diagnostic.error("Invalid target", "column 'x' is not in the dataset", path=["target"])])
    client = FakeClient(GetBlob=ds.Blob(sha256=SHA), CreateDataset=err)
    diags = Diagnostics()
    assert resource(client).create(CreateContext(diags, TYPE), planned_state(target="x")) is None
    assert [(d.summary, d.path) for d in diags.diagnostics] == [("Invalid target", ["target"])]


def test_failed_update_keeps_the_prior_state(workdir):
    client = FakeClient(GetBlob=ds.Blob(sha256=SHA), UpdateDataset=not_found())
    diags = Diagnostics()
    assert resource(client).update(UpdateContext(diags, TYPE), STATE, planned_state(target="hour")) is STATE
    assert diags.diagnostics[0].summary == "Dataset deleted outside Terraform"


def test_import_state_of_a_file_dataset_takes_the_blob_digest():
    spec = ds.DatasetSpec(name="traffic", source="file://data/traffic.csv", blob_sha256=SHA, target="congested", format="csv")
    s = _state(dataset(spec, rows=40, version=3), None)
    assert (s["id"], s["file_sha256"], s["target"], s["format"], s["query"], s["row_count"], s["version"]) == (
        "traffic", SHA, "congested", "csv", None, 40, 3)


def test_upload_rejected_by_the_control_plane_is_an_error_on_source(workdir):
    err = ApiError(grpc.StatusCode.INVALID_ARGUMENT, [Diagnostic.error("Invalid header.sha256", "the bytes hash to 1234…, not 5678…")])
    client = FakeClient(GetBlob=not_found(), UploadBlob=err)
    diags = Diagnostics()
    assert resource(client).create(CreateContext(diags, TYPE), planned_state()) is None
    [d] = diags.diagnostics
    assert (d.summary, d.path) == ("Local file changed during upload", ["source"]) and "hash to 1234" in d.detail
    assert client.methods() == ["GetBlob", "UploadBlob"]
