"""stratum_join_token with real terraform against a real control plane."""

from __future__ import annotations

import datetime as dt
import re

import grpc
import pytest

from stratum.v1 import control_plane_pb2 as cp
from tests.harness import wait_for
from tests.provider.tfharness import Step, run_steps

pytestmark = pytest.mark.e2e

ADDR = "stratum_join_token.edge"


@pytest.fixture(scope="module")
def control_plane(module_control_plane):
    """One control plane for the module: each test works on join tokens of names of its own."""
    return module_control_plane


def server_token(admin, name: str):
    try:
        return admin.GetJoinToken(cp.GetJoinTokenRequest(name=name))
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e
        return None


def test_lifecycle_create_update_import_replace_destroy(ws, admin):
    full = ws.provider + '''
resource "stratum_join_token" "edge" {
  name        = "edge-north"
  tier        = "edge"
  labels      = { zone = "north", "stratum.io/rack" = "r1" }
  ttl         = "24h"
  max_uses    = 3
  description = "north edge boxes"
}
output "token" {
  value     = stratum_join_token.edge.token
  sensitive = true
}
'''
    seen = {}

    def created(ws):
        s = ws.resources()[ADDR]
        assert s["id"] == s["name"] == "edge-north"
        assert s["tier"] == "edge" and s["labels"] == {"zone": "north", "stratum.io/rack": "r1"}
        assert s["ttl"] == "24h" and s["max_uses"] == 3 and s["uses"] == 0
        dt.datetime.fromisoformat(s["expires_at"].replace("Z", "+00:00"))  # RFC 3339
        srv = server_token(admin, "edge-north")
        assert srv.token == s["token"] == ws.outputs()["token"]
        assert dict(srv.spec.labels) == s["labels"] and srv.spec.max_uses == 3 and srv.spec.description == "north edge boxes"
        seen["token"] = s["token"]

    # Same name, other settings: updated in place, the secret is kept.
    updated_cfg = ws.provider + '''
resource "stratum_join_token" "edge" {
  name     = "edge-north"
  tier     = "fog"
  labels   = { zone = "south" }
}
'''

    def updated(ws):
        s = ws.resources()[ADDR]
        assert s["token"] == seen["token"], "an in-place update must keep the secret"
        assert (s["tier"], s["labels"], s["ttl"], s["max_uses"], s["description"], s["expires_at"]) == ("fog", {"zone": "south"}, None, None, None, None)
        srv = server_token(admin, "edge-north")
        assert (srv.spec.tier, dict(srv.spec.labels), srv.spec.ttl, srv.spec.max_uses) == ("fog", {"zone": "south"}, "", 0)
        assert not srv.HasField("expires_at")

    renamed_cfg = updated_cfg.replace('"edge-north"', '"edge-south"')

    def renamed(ws):
        s = ws.resources()[ADDR]
        assert s["id"] == "edge-south" and s["token"] != seen["token"]
        assert server_token(admin, "edge-north") is None, "the replaced token must be revoked"
        assert server_token(admin, "edge-south").token == s["token"]

    run_steps(ws, [
        Step(full, check=created, import_address=ADDR, import_id="edge-north"),
        Step(updated_cfg, check=updated, import_address=ADDR, import_id="edge-north"),
        Step(renamed_cfg, check=renamed),
    ])
    assert "must be replaced" not in ws.tf("plan", "-no-color").stdout

    ws.destroy()
    assert ws.resources() == {}
    assert server_token(admin, "edge-south") is None


def test_rename_plan_says_replace(ws, admin):
    cfg = ws.provider + 'resource "stratum_join_token" "edge" {\n  name = "a"\n  tier = "edge"\n}\n'
    run_steps(ws, [Step(cfg)])
    ws.write(cfg.replace('"a"', '"b"'))
    res = ws.plan()
    assert res.rc == 2 and "must be replaced" in res.stdout
    assert re.search(r'name\s+= "a" -> "b" # forces replacement', res.stdout), res.stdout


def test_minimal_token_imports_without_diff(ws, admin):
    cfg = ws.provider + 'resource "stratum_join_token" "edge" {\n  name = "minimal"\n  tier = "cloud"\n}\n'
    run_steps(ws, [Step(cfg, import_address=ADDR, import_id="minimal")])
    s = ws.resources()[ADDR]
    assert (s["labels"], s["ttl"], s["max_uses"], s["description"], s["expires_at"]) == (None, None, None, None, None)


def test_import_of_a_token_made_outside_terraform(ws, admin):
    admin.CreateJoinToken(cp.JoinTokenSpec(name="by-hand", tier="fog", labels={"zone": "west"}, ttl="1h", max_uses=2))
    ws.write(ws.provider + '''
resource "stratum_join_token" "edge" {
  name     = "by-hand"
  tier     = "fog"
  labels   = { zone = "west" }
  ttl      = "1h"
  max_uses = 2
}
''')
    ws.import_(ADDR, "by-hand")
    assert ws.plan().rc == 0


def test_import_of_missing_token_is_a_clean_error(ws, admin):
    ws.write(ws.provider + 'resource "stratum_join_token" "edge" {\n  name = "ghost"\n  tier = "edge"\n}\n')
    res = ws.import_(ADDR, "ghost", check=False)
    assert res.rc == 1 and "no join token named 'ghost'" in res.output and "Traceback" not in res.output


def test_create_adopts_an_identical_token_and_refuses_a_different_one(ws, admin):
    made = admin.CreateJoinToken(cp.JoinTokenSpec(name="same", tier="edge"))
    admin.CreateJoinToken(cp.JoinTokenSpec(name="other", tier="fog"))
    cfg = ws.provider + 'resource "stratum_join_token" "edge" {\n  name = "same"\n  tier = "edge"\n}\n'
    run_steps(ws, [Step(cfg, check=lambda ws: assert_token(ws, made.token))])
    run_steps(ws, [Step(ws.provider + 'resource "stratum_join_token" "x" {\n  name = "other"\n  tier = "edge"\n}\n',
                        expect_error=["Join token name taken", "terraform import"])])


def assert_token(ws, token):
    assert ws.resources()[ADDR]["token"] == token


def test_deleted_outside_terraform_is_planned_again(ws, admin):
    cfg = ws.provider + 'resource "stratum_join_token" "edge" {\n  name = "fragile"\n  tier = "edge"\n}\n'
    run_steps(ws, [Step(cfg)])
    admin.DeleteJoinToken(cp.DeleteJoinTokenRequest(name="fragile"))
    res = ws.plan()
    assert res.rc == 2 and "will be created" in res.stdout
    run_steps(ws, [Step(cfg)])
    assert server_token(admin, "fragile") is not None


def test_a_node_enrolls_with_the_token_and_uses_show_up(ws, admin, start_node):
    cfg = ws.provider + '''
resource "stratum_join_token" "edge" {
  name   = "for-node"
  tier   = "edge"
  labels = { zone = "north" }
}
output "token" {
  value     = stratum_join_token.edge.token
  sensitive = true
}
'''
    run_steps(ws, [Step(cfg)])
    start_node("n1", join_token=ws.outputs()["token"])
    node = wait_for(lambda: admin.nodes().get("n1"), what="node n1 to enroll")
    assert node.tier == "edge" and node.labels["zone"] == "north" and node.join_token == "for-node"
    assert ws.plan().rc == 0  # uses changed on the server: refreshed into state, not a diff
    ws.tf("apply", "-refresh-only", "-auto-approve", "-no-color")
    assert ws.resources()[ADDR]["uses"] == 1
