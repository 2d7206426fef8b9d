"""What users see when something is wrong: diagnostics with the attribute, never a traceback or the token."""

from __future__ import annotations

import pytest

from stratum.v1 import control_plane_pb2 as cp
from tests.harness import free_port
from tests.provider.conftest import provider_hcl
from tests.provider.tfharness import Step, run_steps

pytestmark = pytest.mark.e2e

TOKEN_CFG = '''
resource "stratum_join_token" "edge" {
  name   = "edge"
  tier   = "edge"
  labels = { zone = "north" }
}
'''


def assert_clean(output: str, *secrets: str) -> None:
    assert "Traceback" not in output, output
    for s in secrets:
        assert s not in output, "a secret leaked into terraform's output"


def nothing_created(admin) -> bool:
    return [t.spec.name for t in admin.ListJoinTokens(cp.ListJoinTokensRequest()).tokens if t.spec.name != "bootstrap"] == []


def test_unknown_tier_fails_at_plan_naming_the_attribute(ws, admin):
    run_steps(ws, [Step(ws.provider + TOKEN_CFG.replace('tier   = "edge"', 'tier   = "moon"'), plan_only=True,
                        expect_error=["Error: Invalid tier", 'tier   = "moon"', "unknown tier 'moon'", "edge, fog, cloud"])])
    assert nothing_created(admin)


def test_malformed_label_fails_at_plan_naming_the_key(ws, admin):
    res_cfg = TOKEN_CFG.replace("zone = \"north\"", '"bad key!" = "x", ok = "fine"')
    run_steps(ws, [Step(ws.provider + res_cfg, plan_only=True,
                        expect_error=['Error: Invalid labels["bad key!"]', "labels = {", "invalid label key 'bad key!'"])])
    out = ws.plan(check=False).output
    assert out.count("Error:") == 1, out  # only the bad key, not the good one
    assert nothing_created(admin)


def test_every_violation_is_reported(ws):
    cfg = TOKEN_CFG.replace('tier   = "edge"', 'tier   = "moon"\n  ttl    = "soon"\n  max_uses = -1\n  name = "Bad_Name"')
    ws.write(ws.provider + cfg.replace('  name   = "edge"\n', ""))
    res = ws.plan(check=False)
    assert res.rc == 1
    for text in ("Invalid name", "Invalid tier", "Invalid ttl", "Invalid max_uses", "max_uses = -1"):
        assert text in res.output, res.output
    ws.write(ws.provider + TOKEN_CFG.replace('tier   = "edge"', 'tier = "edge"\n  max_uses = 1.5'))
    res = ws.plan(check=False)
    assert res.rc == 1 and "Invalid max_uses" in res.output and "whole number" in res.output


def test_update_to_a_bad_tier_fails_at_plan(ws, admin):
    run_steps(ws, [
        Step(ws.provider + TOKEN_CFG),
        Step(ws.provider + TOKEN_CFG.replace('tier   = "edge"', 'tier   = "moon"'), plan_only=True, expect_error=["Invalid tier"]),
    ])
    assert admin.GetJoinToken(cp.GetJoinTokenRequest(name="edge")).spec.tier == "edge"


@pytest.mark.parametrize("what", ["resource", "data source"])
def test_wrong_token(make_workspace, control_plane, what):
    wrong = "not-the-admin-token-0123456789"
    ws = make_workspace(STRATUM_TOKEN=wrong)
    ws.write(provider_hcl(control_plane.endpoint, control_plane.ca_pem_path) + (TOKEN_CFG if what == "resource" else 'data "stratum_nodes" "all" {}\n'))
    res = ws.plan(check=False)
    assert res.rc == 1
    assert "The Stratum control plane rejected the token" in res.output and "STRATUM_TOKEN" in res.output
    assert_clean(res.output, wrong, control_plane.admin_token)


def test_wrong_token_in_the_provider_block(make_workspace, control_plane):
    wrong = "wrong-token-in-hcl-abcdef"
    ws = make_workspace()
    ws.write(provider_hcl(control_plane.endpoint, control_plane.ca_pem_path).replace("}\n", f'  token = "{wrong}"\n}}\n', 1) + TOKEN_CFG)
    res = ws.plan(check=False)
    assert res.rc == 1 and "rejected the token" in res.output
    assert_clean(res.output, wrong)


def test_missing_token(make_workspace, control_plane):
    ws = make_workspace()  # no STRATUM_TOKEN, no token attribute
    ws.write(provider_hcl(control_plane.endpoint, control_plane.ca_pem_path) + TOKEN_CFG)
    res = ws.plan(check=False)
    assert res.rc == 1
    assert "No Stratum token configured" in res.output and "STRATUM_TOKEN" in res.output
    assert_clean(res.output, control_plane.admin_token)


def test_control_plane_unreachable_names_the_endpoint(ws, control_plane):
    run_steps(ws, [Step(ws.provider + TOKEN_CFG)])
    control_plane.stop()
    res = ws.plan(check=False)
    assert res.rc == 1
    assert f"cannot reach the Stratum control plane at {control_plane.endpoint}" in res.output
    assert_clean(res.output, control_plane.admin_token)
    # and it comes back: same state, no changes
    control_plane.start()
    assert ws.plan().rc == 0


def test_nothing_listening(make_workspace, control_plane):
    endpoint = f"127.0.0.1:{free_port()}"
    ws = make_workspace(STRATUM_TOKEN=control_plane.admin_token)
    ws.write(provider_hcl(endpoint, control_plane.ca_pem_path) + 'data "stratum_nodes" "all" {}\n')
    res = ws.plan(check=False)
    assert res.rc == 1 and f"cannot reach the Stratum control plane at {endpoint}" in res.output
    assert_clean(res.output)


def test_wrong_ca_is_reported_as_a_tls_problem(make_workspace, control_plane, tmp_path):
    from stratum import pki

    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(pki.make_ca()[1])
    ws = make_workspace(STRATUM_TOKEN=control_plane.admin_token)
    ws.write(provider_hcl(control_plane.endpoint, str(other_ca)) + 'data "stratum_nodes" "all" {}\n')
    res = ws.plan(check=False)
    assert res.rc == 1 and "cannot reach the Stratum control plane" in res.output and "ca_cert" in res.output
    assert_clean(res.output, control_plane.admin_token)


def test_missing_ca_file_names_the_path(make_workspace, control_plane, tmp_path):
    missing = tmp_path / "no-such" / "ca.pem"
    ws = make_workspace(STRATUM_TOKEN=control_plane.admin_token)
    ws.write(provider_hcl(control_plane.endpoint, str(missing)) + TOKEN_CFG)
    res = ws.plan(check=False)
    assert res.rc == 1 and "Cannot read the CA certificate" in res.output and str(missing) in res.output
    assert_clean(res.output)


def test_environment_configures_the_provider(make_workspace, control_plane):
    ws = make_workspace(STRATUM_TOKEN=control_plane.admin_token, STRATUM_ENDPOINT=control_plane.endpoint, STRATUM_CA_CERT=control_plane.ca_pem_path)
    run_steps(ws, [Step('provider "stratum" {}\n' + TOKEN_CFG)])


def test_token_never_in_logs_or_state(ws, control_plane):
    ws.env.update(TF_LOG="TRACE", STRATUM_PROVIDER_LOG_LEVEL="DEBUG")
    run_steps(ws, [Step(ws.provider + TOKEN_CFG)])
    res = ws.plan()
    assert res.stderr, "expected TRACE logs on stderr"
    assert_clean(res.output, control_plane.admin_token)
    assert control_plane.admin_token not in (ws.dir / "terraform.tfstate").read_text()
