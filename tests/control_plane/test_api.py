"""The ControlPlane and NodeAgent APIs against a real control plane process."""

from __future__ import annotations

import time

import grpc
import pytest
from grpc_status import rpc_status
from google.rpc import error_details_pb2

from stratum import pki
from stratum.grpc_util import bearer, secure_channel
from stratum.v1 import control_plane_pb2 as cp, control_plane_pb2_grpc as cp_grpc
from stratum.v1 import node_agent_pb2 as na, node_agent_pb2_grpc as na_grpc, types_pb2 as t
from tests.harness import wait_for


def violations(err: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)
    out = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        assert detail.Unpack(bad)
        out.update({v.field: v.description for v in bad.field_violations})
    return out


def enroll(control_plane, token: str, name: str, key_pem: bytes | None = None, **kw):
    key_pem = key_pem or pki.key_pem(pki.new_key())
    with open(control_plane.ca_pem_path, "rb") as f:
        ca = f.read()
    with secure_channel(control_plane.endpoint, ca) as ch:
        req = na.EnrollRequest(join_token=token, name=name, csr_pem=pki.make_csr(key_pem, name).decode(),
                               capabilities=t.Capabilities(cpu_cores=2, memory_mb=1024, arch="x86_64"), **kw)
        return key_pem, na_grpc.NodeAgentStub(ch).Enroll(req, timeout=10)


def test_join_token_crud_is_idempotent(control_plane):
    c = control_plane.client()
    spec = cp.JoinTokenSpec(name="fleet-north", tier="edge", labels={"zone": "north"}, ttl="1h", max_uses=3)
    first = c.CreateJoinToken(spec)
    again = c.CreateJoinToken(spec)
    assert again.id == first.id and again.token == first.token
    assert first.token.startswith("stj1." + pki.fingerprint(open(control_plane.ca_pem_path, "rb").read()))
    assert first.expires_at.ToSeconds() - first.created_at.ToSeconds() == 3600

    other = cp.JoinTokenSpec(name="fleet-north", tier="fog")
    with pytest.raises(grpc.RpcError) as e:
        c.CreateJoinToken(other)
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS

    updated = c.UpdateJoinToken(cp.JoinTokenSpec(name="fleet-north", tier="fog", max_uses=5))
    assert (updated.id, updated.token, updated.spec.tier, updated.spec.max_uses) == (first.id, first.token, "fog", 5)
    assert not updated.HasField("expires_at")
    assert c.GetJoinToken(cp.GetJoinTokenRequest(name="fleet-north")).spec.tier == "fog"
    assert "fleet-north" in [tok.spec.name for tok in c.ListJoinTokens().tokens]

    c.DeleteJoinToken(cp.DeleteJoinTokenRequest(name="fleet-north"))
    c.DeleteJoinToken(cp.DeleteJoinTokenRequest(name="fleet-north"))  # idempotent
    with pytest.raises(grpc.RpcError) as e:
        c.GetJoinToken(cp.GetJoinTokenRequest(name="fleet-north"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_invalid_join_token_names_every_field(control_plane):
    c = control_plane.client()
    bad = cp.JoinTokenSpec(name="Bad_Name", tier="mars", labels={"ok": "yes", "bad key!": "v"}, ttl="soon", max_uses=-1)
    for call in (c.ValidateJoinToken, c.CreateJoinToken):
        with pytest.raises(grpc.RpcError) as e:
            call(bad)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        v = violations(e.value)
        assert set(v) == {"name", "tier", 'labels["bad key!"]', "ttl", "max_uses"}
        assert "unknown tier 'mars'" in v["tier"] and "edge, fog, cloud" in v["tier"]
    assert "Bad_Name" not in [tok.spec.name for tok in c.ListJoinTokens().tokens]  # nothing half-created
    assert c.ValidateJoinToken(cp.JoinTokenSpec(name="good", tier="cloud")) == cp.ValidateResponse()


@pytest.mark.parametrize("metadata, expected", [
    (None, "missing admin token"),
    (bearer("not-the-token"), "admin token rejected"),
])
def test_control_plane_requires_admin_token(control_plane, metadata, expected):
    with control_plane.channel() as ch:
        with pytest.raises(grpc.RpcError) as e:
            cp_grpc.ControlPlaneStub(ch).ListNodes(cp.ListNodesRequest(), metadata=metadata, timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert expected in e.value.details()


def test_enrollment_is_idempotent_and_counts_uses(control_plane):
    c = control_plane.client()
    tok = c.CreateJoinToken(cp.JoinTokenSpec(name="two", tier="fog", labels={"site": "a"}, max_uses=2)).token
    key, first = enroll(control_plane, tok, "dev-1", labels={"rack": "r1"})
    _, retry = enroll(control_plane, tok, "dev-1", key_pem=key)  # same name, same key: a retry
    assert retry.node_id == first.node_id and first.node_id.startswith("node-")
    assert (first.tier, dict(first.labels)) == ("fog", {"site": "a", "rack": "r1"})
    cert = pki.load_cert(first.certificate_pem.encode())
    assert cert.subject.rfc4514_string().endswith(f"CN={first.node_id}") or first.node_id in cert.subject.rfc4514_string()
    assert c.GetJoinToken(cp.GetJoinTokenRequest(name="two")).uses == 1

    with pytest.raises(grpc.RpcError) as e:  # same name, another key: a different machine
        enroll(control_plane, tok, "dev-1")
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS and "dev-1" in e.value.details()

    enroll(control_plane, tok, "dev-2")
    with pytest.raises(grpc.RpcError) as e:
        enroll(control_plane, tok, "dev-3")
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "used up (2 of 2 uses)" in e.value.details()
    assert set(c.nodes()) == {"dev-1", "dev-2"}


def test_enrollment_rejects_bad_tokens_and_input(control_plane):
    c = control_plane.client()
    tok = c.CreateJoinToken(cp.JoinTokenSpec(name="short", tier="edge", ttl="1s")).token
    time.sleep(1.2)
    with pytest.raises(grpc.RpcError) as e:
        enroll(control_plane, tok, "late")
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in e.value.details()

    wrong = control_plane.join_token[:-4] + "0000"
    with pytest.raises(grpc.RpcError) as e:
        enroll(control_plane, wrong, "guess")
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "not recognised" in e.value.details()
    assert wrong.split(".")[-1] not in e.value.details()  # the secret is never echoed

    with pytest.raises(grpc.RpcError) as e:
        enroll(control_plane, control_plane.join_token, "x", tier="moon", labels={"-bad": "v"})
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(e.value)) == {"tier", 'labels["-bad"]'}
    assert c.nodes() == {}


def node_session(control_plane, key_pem: bytes, resp: na.EnrollResponse):
    ch = secure_channel(f"127.0.0.1:{resp.node_agent_port}", resp.ca_pem.encode(), key_pem, resp.certificate_pem.encode())
    return ch, na_grpc.NodeAgentStub(ch)


def test_heartbeats_make_a_node_ready_and_silence_makes_it_down(control_plane):
    key, resp = enroll(control_plane, control_plane.join_token, "hb-1")
    c = control_plane.client()
    assert c.nodes()["hb-1"].state == "down"  # enrolled, never heard from
    ch, stub = node_session(control_plane, key, resp)

    def messages():
        yield na.NodeMessage(hello=na.Hello(capabilities=t.Capabilities(cpu_cores=4, memory_mb=2048, arch="aarch64")))
        for seq in range(1, 4):
            yield na.NodeMessage(heartbeat=na.Heartbeat(seq=seq, utilisation=t.Utilisation(cpu_percent=12.5)))
            time.sleep(0.5)

    replies = list(stub.Connect(messages(), timeout=20))
    assert replies[0].welcome.node_id == resp.node_id and replies[0].welcome.heartbeat_interval_s == 1.0
    assert [r.heartbeat_ack.seq for r in replies[1:] if r.HasField("heartbeat_ack")] == [1, 2, 3]
    # the node is told what to run at the start of every session: nothing yet
    assigned = [r.assignments for r in replies if r.HasField("assignments")]
    assert assigned and all(not a.services for a in assigned)
    node = c.nodes()["hb-1"]
    assert (node.capabilities.cpu_cores, node.capabilities.arch, node.utilisation.cpu_percent) == (4, "aarch64", 12.5)
    wait_for(lambda: c.nodes()["hb-1"].state == "down", 10, what="node down after missed heartbeats")
    ch.close()


def test_connect_needs_a_client_certificate(control_plane):
    with control_plane.channel() as ch:  # public listener, no client certificate
        with pytest.raises(grpc.RpcError) as e:
            list(na_grpc.NodeAgentStub(ch).Connect(iter([na.NodeMessage(hello=na.Hello())]), timeout=5))
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "client certificate" in e.value.details()


def test_node_filters(control_plane):
    c = control_plane.client()
    enroll(control_plane, control_plane.join_token, "small", tier="edge", labels={"zone": "north"})
    enroll(control_plane, control_plane.join_token, "big", tier="fog", labels={"zone": "south"})
    assert set(c.nodes(tier="edge")) == {"small"}
    assert set(c.nodes(labels={"zone": "south"})) == {"big"}
    assert set(c.nodes(min_cpu=2, min_memory_mb=1024)) == {"small", "big"}
    assert c.nodes(min_memory_mb=1025) == {}
    assert c.nodes(gpu=True) == {} and set(c.nodes(gpu=False)) == {"small", "big"}
    assert c.GetNode(cp.GetNodeRequest(id_or_name="big")).tier == "fog"
    with pytest.raises(grpc.RpcError) as e:
        c.ListNodes(cp.ListNodesRequest(tier="mars"))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "tier" in violations(e.value)
    with pytest.raises(grpc.RpcError) as e:
        c.GetNode(cp.GetNodeRequest(id_or_name="nope"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_first_start_files_and_restart_keeps_identity(control_plane, tmp_path):
    import os
    import stat
    for name in ("ca.pem", "ca.key", "admin.token", "join.token", "stratum.db"):
        mode = stat.S_IMODE(os.stat(os.path.join(control_plane.data_dir, name)).st_mode)
        assert mode == 0o600, (name, oct(mode))
    token, admin = control_plane.join_token, control_plane.admin_token
    enroll(control_plane, token, "survivor")
    control_plane.kill()
    control_plane.start()
    assert (control_plane.join_token, control_plane.admin_token) == (token, admin)
    assert set(control_plane.client().nodes()) == {"survivor"}


def test_health_and_reflection_let_other_tools_discover_the_api(control_plane):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with control_plane.channel() as ch:
        for service in ("", "stratum.v1.ControlPlane", "stratum.v1.NodeAgent"):
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        db = ProtoReflectionDescriptorDatabase(ch)
        assert {"stratum.v1.ControlPlane", "stratum.v1.NodeAgent", "grpc.health.v1.Health"} <= set(db.get_services())
        svc = db.FindFileContainingSymbol("stratum.v1.ControlPlane").service[0]
        assert {"ListNodes", "CreateJoinToken", "ValidateJoinToken"} <= {m.name for m in svc.method}


def test_a_taken_listen_port_is_an_error_not_a_shared_port(tmp_path):
    """gRPC's default SO_REUSEPORT would let a second listener share the port (clients split at random)."""
    import socket
    import subprocess

    from tests.harness import stratum_argv

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(stratum_argv("control-plane", "--data-dir", str(tmp_path / "cp"), "--listen", f"127.0.0.1:{port}",
                                        "--node-listen", "127.0.0.1:0"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"cannot listen on 127.0.0.1:{port}: the address is in use" in r.stderr


def test_place_what_if_refuses_bad_queries_on_their_fields(control_plane):
    from stratum.v1 import models_pb2 as m

    c = control_plane.client()
    bad = m.PlacementQuery(requirements=m.Requirements(cpu=-1, tiers=["mars"]), replicas=-2,
                           placement=m.PlacementPreferences(prefer_tiers=["venus"]))
    with pytest.raises(grpc.RpcError) as e:
        c.PlaceWhatIf(bad)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    v = violations(e.value)
    assert {"requirements.cpu", "requirements.tiers[0]", "replicas", "placement.prefer_tiers[0]"} <= set(v), v
    with pytest.raises(grpc.RpcError) as e:
        c.PlaceWhatIf(m.PlacementQuery(model="no-such-model"))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "no-such-model" in violations(e.value)["model"]
    # a good query with no nodes: nowhere to go, every reason said
    answer = c.PlaceWhatIf(m.PlacementQuery(requirements=m.Requirements(cpu=1)))
    assert not answer.placements and answer.violations
