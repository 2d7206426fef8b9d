"""The API the dashboard reads and acts through, against a real control plane and node daemons:
read access tokens (what they may call, revocation, expiry, bad specs), draining a node (an app
moves off it and comes back when it may), the lists, and stored history that a restart keeps."""

from __future__ import annotations

import time

import grpc
import pytest

from stratum.grpc_util import bearer, secure_channel
from stratum.v1 import access_pb2 as ac, apps_pb2 as a, control_plane_pb2 as cp, control_plane_pb2_grpc as cp_grpc
from stratum.v1 import history_pb2 as h, plans_pb2 as pl
from tests.harness import wait_for

S = grpc.StatusCode


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as e:
        call()
    return e.value.code()


def as_token(plane, token: str):
    """A stub whose every call carries `token` (not the admin's)."""
    with open(plane.ca_pem_path, "rb") as f:
        stub = cp_grpc.ControlPlaneStub(secure_channel(plane.endpoint, f.read()))

    class Caller:
        def __getattr__(self, method):
            return lambda req, timeout=10: getattr(stub, method)(req, metadata=bearer(token), timeout=timeout)
    return Caller()


def test_a_read_token_reads_acts_not_sees_no_secret_and_ends_when_revoked_or_expired(control_plane):
    c = control_plane.client()
    made = c.CreateAccessToken(ac.AccessTokenSpec(name="viewer", scope="read", description="wall screen"))
    assert made.token.startswith(f"sta1.{made.id}.") and made.spec.scope == "read" and not made.HasField("expires_at")
    viewer = as_token(control_plane, made.token)

    assert viewer.GetStatus(cp.GetStatusRequest()).store == "sqlite"
    assert list(viewer.ListNodes(cp.ListNodesRequest()).nodes) == []
    assert list(viewer.ListServices(cp.ListServicesRequest()).services) == []
    assert viewer.GetHistory(h.GetHistoryRequest(series="node", key="nobody")).retention == "7d"
    # it may look, not act, and not read secrets (join tokens carry theirs)
    for call in (lambda: viewer.CreateJoinToken(cp.JoinTokenSpec(name="t", tier="edge")),
                 lambda: viewer.GetJoinToken(cp.GetJoinTokenRequest(name="bootstrap")),
                 lambda: viewer.ListJoinTokens(cp.ListJoinTokensRequest()),
                 lambda: viewer.ListAccessTokens(ac.ListAccessTokensRequest()),
                 lambda: viewer.CreateAccessToken(ac.AccessTokenSpec(name="more", scope="read")),
                 lambda: viewer.DrainNode(cp.DrainNodeRequest(id_or_name="x", drain=True)),
                 lambda: viewer.PinModelVersion(cp.PinModelVersionRequest(name="x", version="y"))):
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == S.PERMISSION_DENIED and "'viewer' has scope 'read'" in e.value.details()

    # the secret is shown once: not in the list, and a second create of the name is refused
    listed = c.ListAccessTokens(ac.ListAccessTokensRequest()).tokens
    assert [(t.spec.name, t.token, t.spec.description) for t in listed] == [("viewer", "", "wall screen")]
    assert code_of(lambda: c.CreateAccessToken(ac.AccessTokenSpec(name="viewer", scope="read"))) == S.ALREADY_EXISTS
    for bad, field in ((ac.AccessTokenSpec(name="x", scope="admin"), "scope"),
                       (ac.AccessTokenSpec(name="x", scope="read", ttl="99999999999h"), "ttl"),
                       (ac.AccessTokenSpec(name="", scope="read"), "name")):
        with pytest.raises(grpc.RpcError) as e:
            c.CreateAccessToken(bad)
        assert e.value.code() == S.INVALID_ARGUMENT and field in e.value.details()
    # a token one digit off, another format, or revoked: UNAUTHENTICATED
    forged = made.token[:-1] + ("0" if made.token[-1] != "0" else "1")
    assert code_of(lambda: as_token(control_plane, forged).GetStatus(cp.GetStatusRequest())) == S.UNAUTHENTICATED
    c.DeleteAccessToken(ac.DeleteAccessTokenRequest(name="viewer"))
    assert code_of(lambda: viewer.GetStatus(cp.GetStatusRequest())) == S.UNAUTHENTICATED
    c.DeleteAccessToken(ac.DeleteAccessTokenRequest(name="viewer"))  # idempotent
    assert code_of(lambda: c.DeleteAccessToken(ac.DeleteAccessTokenRequest(name=""))) == S.INVALID_ARGUMENT

    brief = c.CreateAccessToken(ac.AccessTokenSpec(name="brief", scope="read", ttl="2s"))
    assert brief.expires_at.seconds - brief.created_at.seconds in (1, 2)
    short = as_token(control_plane, brief.token)
    assert short.GetStatus(cp.GetStatusRequest()).version
    time.sleep(2.2)
    assert code_of(lambda: short.GetStatus(cp.GetStatusRequest())) == S.UNAUTHENTICATED
    c.close()


APP = a.AppSpec(name="idle", kind="service", command="python3", args=["-c", "import time; time.sleep(3600)"],
                requirements={"cpu": 0.1, "memory_mb": 32}, kill_timeout_s=2)


def test_draining_a_node_moves_its_app_off_and_it_may_come_back(control_plane, start_node):
    c = control_plane.client()
    start_node("n1", tier="edge")
    wait_for(lambda: c.nodes().get("n1") and c.nodes()["n1"].state == "ready", 30, what="n1 ready")
    c.CreateApp(APP)
    wait_for(lambda: c.GetApp(a.GetAppRequest(name="idle")).state == "ready", 60, what="idle ready")

    drained = c.DrainNode(cp.DrainNodeRequest(id_or_name="n1", drain=True))
    assert drained.drain and drained.name == "n1" and c.nodes()["n1"].drain
    # no other node: the instance keeps running where it is, and the app says why it is not settled
    app = c.GetApp(a.GetAppRequest(name="idle"))
    assert [(i.node_name, i.state) for i in app.instances] == [("n1", "running")]
    assert app.state == "pending" and "node n1 is drained" in app.message, app.message
    with pytest.raises(grpc.RpcError) as e:  # plan time says so too
        c.ValidateApp(pl.ValidateAppRequest(app=a.AppSpec(name="more", kind="service", command="true")))
    assert e.value.code() == S.INVALID_ARGUMENT and "n1 is drained" in e.value.details()

    start_node("n2", tier="edge")  # a node that joins takes it
    app = wait_for(lambda: (x := c.GetApp(a.GetAppRequest(name="idle"))).state == "ready" and x, 60, what="idle on n2")
    assert [i.node_name for i in app.instances] == ["n2"]
    assert not c.DrainNode(cp.DrainNodeRequest(id_or_name="n1", drain=False)).drain
    assert not c.nodes()["n1"].drain
    assert code_of(lambda: c.DrainNode(cp.DrainNodeRequest(id_or_name="", drain=True))) == S.INVALID_ARGUMENT
    assert code_of(lambda: c.DrainNode(cp.DrainNodeRequest(id_or_name="ghost", drain=True))) == S.NOT_FOUND
    assert code_of(lambda: c.DrainNode(cp.DrainNodeRequest(id_or_name="x" * 8000, drain=True))) == S.NOT_FOUND

    listed = c.ListApps(cp.ListAppsRequest()).apps
    assert [(x.spec.name, x.state, [i.node_name for i in x.instances]) for x in listed] == [("idle", "ready", ["n2"])]
    c.close()


def test_lists_pins_and_history_errors_name_what_is_wrong(control_plane):
    c = control_plane.client()
    assert list(c.ListModels(cp.ListModelsRequest()).models) == []
    assert list(c.ListCloudPools(cp.ListCloudPoolsRequest()).pools) == []
    assert list(c.ListOperations(cp.ListOperationsRequest()).operations) == []
    assert code_of(lambda: c.ListModelVersions(cp.ListModelVersionsRequest(name="ghost"))) == S.NOT_FOUND
    assert code_of(lambda: c.PinModelVersion(cp.PinModelVersionRequest(name="ghost", version="abc"))) == S.NOT_FOUND
    assert code_of(lambda: c.PinModelVersion(cp.PinModelVersionRequest(name="", version="abc"))) == S.INVALID_ARGUMENT
    for req, field in ((h.GetHistoryRequest(series="weather", key="x"), "series"),
                       (h.GetHistoryRequest(series="node", key=""), "key"),
                       (h.GetHistoryRequest(series="node", key="x", limit=-1), "limit"),
                       (cp.ListOperationsRequest(limit=5000), "limit")):
        method = "GetHistory" if isinstance(req, h.GetHistoryRequest) else "ListOperations"
        with pytest.raises(grpc.RpcError) as e:
            getattr(c, method)(req)
        assert e.value.code() == S.INVALID_ARGUMENT and field in e.value.details(), (req, e.value.details())
    c.close()


def test_node_history_is_stored_and_outlives_a_restart(control_plane, start_node):
    c = control_plane.client()
    start_node("hist-1", tier="fog")
    wait_for(lambda: c.nodes().get("hist-1") and c.nodes()["hist-1"].state == "ready", 30, what="node ready")
    # sampled every 15 s, one point a minute per node
    pts = wait_for(lambda: c.GetHistory(h.GetHistoryRequest(series="node", key="hist-1")).points, 40, interval=0.5,
                   what="a stored node point")
    assert pts[0].at.seconds % 60 == 0 and 0 <= pts[0].values["cpu_percent"] <= 100 and pts[0].notes["state"] == "ready"
    assert 0 < pts[0].values["memory_percent"] < 100
    c.close()
    control_plane.stop()
    control_plane.start()
    c = control_plane.client()
    again = c.GetHistory(h.GetHistoryRequest(series="node", key="hist-1")).points
    assert [p.at.seconds for p in again[:1]] == [pts[0].at.seconds] and again[0].values == pts[0].values
    c.close()


def test_a_pinned_version_must_exist_and_an_operation_has_its_reason(control_plane, tmp_path):
    """Pinning through the API checks the version, as the spec's pinned_version does; the model's
    training operation carries why it ran."""
    from tests.lifecycle import DATA, model_spec, upload, wait_trained
    from stratum.v1 import datasets_pb2 as ds

    c = control_plane.client()
    blob = upload(c, (DATA / "traffic.csv").read_bytes())
    c.CreateDataset(ds.DatasetSpec(name="traffic", source="file://traffic.csv", blob_sha256=blob, target="congestion"))
    c.CreateModel(model_spec("pinme", "traffic"))
    model = wait_trained(c, "pinme")
    v1 = model.serving.version
    with pytest.raises(grpc.RpcError) as e:
        c.PinModelVersion(cp.PinModelVersionRequest(name="pinme", version="000000000000"))
    assert e.value.code() == S.INVALID_ARGUMENT and "pinned_version" in e.value.details() and v1 in e.value.details()
    pinned = c.PinModelVersion(cp.PinModelVersionRequest(name="pinme", version=v1))
    assert pinned.spec.pinned_version == v1 and pinned.serving.version == v1
    assert c.PinModelVersion(cp.PinModelVersionRequest(name="pinme")).spec.pinned_version == ""
    (version,) = c.ListModelVersions(cp.ListModelVersionsRequest(name="pinme")).versions
    assert version.version == v1 and len(version.leaderboard) >= 2 and version.leaderboard[0].HasField("score")
    (op,) = c.ListOperations(cp.ListOperationsRequest(target="model/pinme")).operations
    assert (op.reason, op.state, op.id) == ("create", "succeeded", model.operation.id)
    assert [x.spec.name for x in c.ListModels(cp.ListModelsRequest()).models] == ["pinme"]
    c.close()
