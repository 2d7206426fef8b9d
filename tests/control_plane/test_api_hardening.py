"""Bad input the API must refuse on its field, with a short message: out-of-range numbers and
durations, NaN and Inf, huge names, empty names, empty what-ifs (one control plane for all).
What the fuzzer (test_fuzz.py) found, each as a deliberate case."""

from __future__ import annotations

import math
import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from control_plane.store import JoinTokenRow, Store
from stratum.v1 import control_plane_pb2 as cp, datasets_pb2 as ds, models_pb2 as m, pools_pb2 as pl
from tests.control_plane.test_api import violations
from tests.harness import ControlPlane

S = grpc.StatusCode
HUGE = "x" * 8192


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    p = ControlPlane(str(tmp_path_factory.mktemp("hardening")), env={"VAULT_ADDR": "", "VAULT_TOKEN": ""}).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def c(plane):
    client = plane.client()
    yield client
    client.close()


def refused(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        call(request)
    return e.value


def test_a_ttl_over_ten_years_is_refused_and_lists_keep_working(c):
    for call in (c.ValidateJoinToken, c.CreateJoinToken):
        for ttl in ("99999999999h", "3651d", "9" * 40 + "s"):
            e = refused(call, cp.JoinTokenSpec(name="long", tier="edge", ttl=ttl))
            assert e.code() == S.INVALID_ARGUMENT
            assert "longer than 3650d" in violations(e)["ttl"]
    e = refused(c.CreateJoinToken, cp.JoinTokenSpec(name="long", tier="edge", ttl="1" * 16000))
    assert e.code() == S.INVALID_ARGUMENT and "invalid duration" in violations(e)["ttl"]  # quickly: no regex blow-up
    e = refused(c.CreateJoinToken, cp.JoinTokenSpec(name="long", tier="edge", max_uses=10**7))
    assert "max_uses = 10000000: give a whole number from 0 to 1e+06" in violations(e)["max_uses"]
    ten_years = c.CreateJoinToken(cp.JoinTokenSpec(name="ten-years", tier="edge", ttl="3650d"))
    assert ten_years.expires_at.ToSeconds() - ten_years.created_at.ToSeconds() == 3650 * 86400
    assert "ten-years" in [t.spec.name for t in c.ListJoinTokens().tokens]
    e = refused(c.UpdateJoinToken, cp.JoinTokenSpec(name="ten-years", tier="edge", ttl="99999999999h"))
    assert e.code() == S.INVALID_ARGUMENT and "ttl" in violations(e)


@pytest.mark.parametrize("name, expires_at", [("far", 1e300), ("never", math.inf), ("long-ago", -1e300)])
def test_a_stored_expiry_out_of_timestamp_range_does_not_break_list_or_get(plane, c, name, expires_at):
    """Rows written before ttl had a bound (or by hand) are clamped into what a Timestamp holds."""
    store = Store(None, plane.data_dir)  # the control plane's own SQLite file, beside it (WAL)
    try:
        store.insert_join_token(JoinTokenRow(f"jt-{name:0>12}", name, "s3cret", "edge", {}, "99999999999h",
                                             0, 0, "", time.time(), expires_at))
    finally:
        store.close()
    listed = {t.spec.name: t for t in c.ListJoinTokens().tokens}
    want = "9999-12-31T23:59:59Z" if expires_at > 0 else "0001-01-01T00:00:00Z"
    assert listed[name].expires_at.ToJsonString() == want
    assert c.GetJoinToken(cp.GetJoinTokenRequest(name=name)).expires_at.ToJsonString() == want
    c.DeleteJoinToken(cp.DeleteJoinTokenRequest(name=name))


@pytest.mark.parametrize("field, value", [
    ("min_cpu", math.nan), ("min_cpu", math.inf), ("min_cpu", -math.inf), ("min_cpu", -1.0), ("min_cpu", 1e9),
    ("min_memory_mb", -1), ("min_memory_mb", 2**62),
])
def test_list_nodes_refuses_nan_inf_negative_and_huge_filters(c, field, value):
    e = refused(c.ListNodes, cp.ListNodesRequest(**{field: value}))
    assert e.code() == S.INVALID_ARGUMENT
    assert violations(e)[field].startswith(f"{field} = ")
    assert c.ListNodes(cp.ListNodesRequest(min_cpu=0.5, min_memory_mb=1024)).nodes == []


@pytest.mark.parametrize("method, request_", [
    ("GetNode", cp.GetNodeRequest(id_or_name=HUGE)), ("GetJoinToken", cp.GetJoinTokenRequest(name=HUGE)),
    ("GetDataset", ds.GetDatasetRequest(name=HUGE)), ("GetModel", m.GetModelRequest(name=HUGE)),
    ("GetOperation", m.GetOperationRequest(id=HUGE)), ("GetService", m.GetServiceRequest(name=HUGE)),
    ("GetServiceMetrics", m.GetServiceMetricsRequest(name=HUGE)), ("GetCloudPool", pl.GetCloudPoolRequest(name=HUGE)),
    ("GetTrainingScript", m.GetTrainingScriptRequest(name=HUGE)),
])
def test_a_huge_name_gets_not_found_with_a_short_message(c, method, request_):
    """An 8 KB name repeated in full made a status larger than the client's metadata limit
    (grpc-python: RESOURCE_EXHAUSTED; grpc-js: no status until the deadline)."""
    e = refused(getattr(c, method), request_)
    assert e.code() == S.NOT_FOUND, e.details()
    assert len(e.details()) < 200 and "xxxx…' (8192 characters)" in e.details()


DELETES = [("DeleteJoinToken", cp.DeleteJoinTokenRequest), ("DeleteDataset", ds.DeleteDatasetRequest),
           ("DeleteModel", m.DeleteModelRequest), ("DeleteService", m.DeleteServiceRequest),
           ("DeleteCloudPool", pl.DeleteCloudPoolRequest)]


@pytest.mark.parametrize("method, cls", DELETES, ids=[d[0] for d in DELETES])
def test_delete_with_an_empty_or_huge_name_is_invalid(c, method, cls):
    for name in ("", HUGE):
        e = refused(getattr(c, method), cls(name=name))
        assert e.code() == S.INVALID_ARGUMENT
        assert "invalid name" in violations(e)["name"] and len(e.details()) < 300
    getattr(c, method)(cls(name="never-existed"))  # a well-formed missing name is still OK (idempotent)


def test_place_what_if_needs_something_to_place_and_bounded_numbers(c):
    e = refused(c.PlaceWhatIf, m.PlacementQuery())
    assert e.code() == S.INVALID_ARGUMENT and "at least one requirement" in violations(e)["requirements"]
    e = refused(c.PlaceWhatIf, m.PlacementQuery(replicas=2, placement=m.PlacementPreferences(pack=True)))
    assert set(violations(e)) == {"requirements"}
    bad = m.PlacementQuery(requirements=m.Requirements(cpu=math.nan, memory_mb=2**40, gpu=1000, gpu_memory_mb=-1), replicas=65)
    v = violations(refused(c.PlaceWhatIf, bad))
    assert {"requirements.cpu", "requirements.memory_mb", "requirements.gpu", "requirements.gpu_memory_mb", "replicas"} <= set(v)
    assert v["requirements.cpu"].startswith("requirements.cpu = nan")
    assert v["replicas"].startswith("replicas = 65: give a whole number from 0 to 64")
    e = refused(c.PlaceWhatIf, m.PlacementQuery(requirements=m.Requirements(cpu=math.inf)))
    assert "requirements.cpu" in violations(e)
    e = refused(c.PlaceWhatIf, m.PlacementQuery(model="no-such-model"))  # a model alone is a valid question
    assert "not found" in violations(e)["model"]
    assert c.PlaceWhatIf(m.PlacementQuery(requirements=m.Requirements(cpu=1), replicas=64)).violations  # no nodes here


def test_model_specs_refuse_nan_grids_and_unbounded_retrain_settings(c):
    spec = m.ModelSpec(name="bounded", dataset="d", task="classification", target="y", candidates=["random_forest"])
    spec.grids["random_forest"].update({"max_depth": [3, math.nan]})
    spec.retrain.CopyFrom(m.Retrain(max_age="99999999999h", drift_threshold=math.nan, min_samples=10**6))
    spec.preprocessing.fill_value = math.inf
    for call in (c.ValidateModel, c.CreateModel):
        e = refused(call, spec)
        assert e.code() == S.INVALID_ARGUMENT, e.details()  # was INTERNAL: grids with NaN are not JSON
        v = violations(e)
        assert "not NaN or Infinity" in v['grids["random_forest"].max_depth']
        assert "longer than 3650d" in v["retrain.max_age"]
        assert v["retrain.drift_threshold"].startswith("retrain.drift_threshold = nan")
        assert "from 0 to 5000" in v["retrain.min_samples"]
        assert "preprocessing.fill_value" in v
    many = m.ModelSpec(name="many", dataset="d", task="classification", target="y", candidates=["knn"] * 40)
    assert "at most 32" in violations(refused(c.ValidateModel, many))["candidates"]
    big_grid = m.ModelSpec(name="big", dataset="d", task="classification", target="y", candidates=["knn"])
    big_grid.grids["knn"].update({"n_neighbors": list(range(1, 10_001))})
    assert "10000 parameter combinations" in violations(refused(c.ValidateModel, big_grid))['grids["knn"]']


def test_dataset_sources_that_do_not_parse_are_refused_without_their_password(c):
    spec = ds.DatasetSpec(name="pg", source="postgresql://u:s3cr3t-pw@[bad/x", query="SELECT 1")
    e = refused(c.CreateDataset, spec)
    assert e.code() == S.INVALID_ARGUMENT, e.details()  # was INTERNAL: urlsplit's "Invalid IPv6 URL"
    assert "s3cr3t-pw" not in e.details()
    e = refused(c.ValidateDataset, ds.DatasetSpec(name="long", source="file://" + HUGE + ".csv", blob_sha256="0" * 64))
    assert "at most 1024" in violations(e)["source"] and len(e.details()) < 300


def test_cloud_pool_numbers_and_names_are_bounded(c):
    spec = pl.CloudPoolSpec(name="p" * 60, driver="ec2", region="us-east-1", size="t3.large", image="ami-1",
                            credentials="secret/stratum/aws", prices={"t3.large": math.nan, "t3.small": 1e9},
                            idle_grace_s=math.inf, server="cp.example:99999", driver_options={"port": "0"})
    for call in (c.ValidateCloudPool, c.CreateCloudPool):
        v = violations(refused(call, spec))
        assert "at most 51 characters" in v["name"]
        assert v['prices["t3.large"]'].startswith('prices["t3.large"] = nan')
        assert 'prices["t3.small"]' in v
        assert v["idle_grace"].startswith("idle_grace = inf")
        assert "server" in v and "give a port from 1 to 65535" in v['driver_options["port"]']


def test_upload_blob_refuses_an_empty_stream_and_a_digest_that_is_not_hex(c):
    def upload(*messages):
        return refused(lambda _: c.stub.UploadBlob(iter(messages), metadata=c.md, timeout=10), None)

    e = upload()
    assert e.code() == S.INVALID_ARGUMENT and "header" in violations(e)  # was INTERNAL: StopAsyncIteration
    e = upload(ds.UploadBlobRequest(header=ds.BlobHeader(sha256="g" * 64, size=1)), ds.UploadBlobRequest(chunk=b"x"))
    assert e.code() == S.INVALID_ARGUMENT and "header.sha256" in violations(e)  # was INTERNAL in the store
    e = upload(ds.UploadBlobRequest(header=ds.BlobHeader(sha256="0" * 64, size=-1)))
    assert "header.size" in violations(e)


def test_a_status_with_thousands_of_problems_stays_small_and_keeps_the_first(c):
    spec = cp.JoinTokenSpec(name="many", tier="edge", labels={f"bad key {i}": "v" for i in range(3000)})
    e = refused(c.CreateJoinToken, spec)
    assert e.code() == S.INVALID_ARGUMENT
    assert len(e.details().encode()) <= 1024 and e.details().endswith("…")
    bad = error_details_pb2.BadRequest()
    status = rpc_status.from_call(e)
    assert status.details[0].Unpack(bad) and bad.ByteSize() <= 1024
    assert bad.field_violations[0].field.startswith('labels["bad key ')
    assert bad.field_violations[-1].description.endswith("more problems")
