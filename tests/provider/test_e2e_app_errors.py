"""stratum_app's plan-time errors: each fails `terraform plan` naming the attribute, and leaves
nothing created (real terraform, control plane, nodes and an OpenBao dev server). None of these
needs an app to run."""

from __future__ import annotations

import os

import grpc
import pytest

from stratum.v1 import apps_pb2 as a, control_plane_pb2 as cp_pb, models_pb2 as m
from tests.cloud import read_policy
from tests.harness import ControlPlane, NodeDaemon, wait_for
from tests.provider.tfharness import Step, run_steps

pytestmark = pytest.mark.e2e

SECRET = "hist-password-never-shown"
OTHER_SECRET = "hist-user-never-shown"


# One control plane and two nodes for the module: every test here fails at plan and leaves them as
# it found them (assert_nothing_created), so a fresh pair per test bought nothing but start-ups.
@pytest.fixture(scope="module")
def control_plane(tmp_path_factory, bao):
    """The workspace's control plane, reading secret_env from the OpenBao server."""
    bao.put("secret/stratum/history", password=SECRET, user=OTHER_SECRET)
    cp = ControlPlane(str(tmp_path_factory.mktemp("app-errors")),
                      env={"VAULT_ADDR": bao.addr, "VAULT_TOKEN": bao.token(read_policy("secret/stratum/*"))}).start()
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def nodes(control_plane):
    """fog-1 (label site=fog, the only node some apps fit) and edge-1."""
    workdir = os.path.dirname(control_plane.data_dir)
    started = [NodeDaemon(workdir, "fog-1", control_plane.endpoint, control_plane.join_token, tier="fog",
                          labels={"site": "fog"}).start(),
               NodeDaemon(workdir, "edge-1", control_plane.endpoint, control_plane.join_token, tier="edge").start()]
    admin = control_plane.client()
    try:
        wait_for(lambda: all(n.state == "ready" for n in admin.nodes().values()) and len(admin.nodes()) == 2, 30,
                 what="nodes ready")
        yield admin.nodes()
    finally:
        admin.close()
        for n in started:
            n.stop()


def app(name: str, body: str, kind: str = "service") -> str:
    return f'resource "stratum_app" "{name}" {{\n  name = "{name}"\n  kind = "{kind}"\n{body}\n}}\n'


def assert_nothing_created(ws, admin, *names: str) -> None:
    """apply fails as plan did, and neither the control plane nor the state has any of the apps."""
    res = ws.apply(check=False)
    assert res.rc == 1 and "Error: Invalid" in res.output or "Error: Artifact" in res.output, res.output
    for name in names:
        with pytest.raises(grpc.RpcError) as e:
            admin.GetApp(a.GetAppRequest(name=name))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND, name
    listed = ws.tf("state", "list", "-no-color", check=False)
    assert listed.stdout.strip() == "" and (listed.rc == 0 or "No state file was found" in listed.stderr), listed.output


def test_bad_schedule_fails_at_plan_on_its_attribute(ws, admin, nodes):
    cfg = ws.provider + app("cron", '  command = "true"\n  schedule = { cron = "*/15 * * 13 *" }', "periodic") \
        + app("zone", '  command = "true"\n  schedule = { cron = "0 3 * * *", time_zone = "Mars/Olympus" }', "periodic") \
        + app("never", '  command = "true"\n  schedule = { cron = "every hour" }', "periodic")
    run_steps(ws, [Step(cfg, plan_only=True, expect_error=[
        "Error: Invalid schedule.cron", "'*/15 * * 13 *' is not a valid cron expression", "with stratum_app.cron",
        "Error: Invalid schedule.time_zone", "unknown time zone 'Mars/Olympus'", "with stratum_app.zone",
        "'every hour' is not a cron expression: give five fields", "with stratum_app.never",
    ])])
    assert_nothing_created(ws, admin, "cron", "zone", "never")


def test_a_batch_app_needs_a_command_or_an_artifact(ws, admin, nodes):
    run_steps(ws, [Step(ws.provider + app("job", '  env = { A = "1" }', "batch"), plan_only=True, expect_error=[
        "Error: Invalid command", "a batch app needs a command or an artifact to run", "with stratum_app.job"])])
    assert_nothing_created(ws, admin, "job")


def test_a_missing_artifact_path_fails_at_plan(ws, admin, nodes):
    run_steps(ws, [Step(ws.provider + app("job", '  artifact = "jobs/missing"\n  command = "python3"', "batch"),
                        plan_only=True, expect_error=[
                            "Error: Artifact not found", 'artifact = "jobs/missing"', "jobs/missing: no such file or directory",
                            "resolved against the Terraform working directory"])])
    assert_nothing_created(ws, admin, "job")


def test_durations_and_timeouts_are_checked_at_plan(ws, admin, nodes):
    body = '''  command = "sleep"
  args    = ["60"]
  ports   = { http = 0 }
  health  = { http = "/", interval = "often" }
  restart = { delay = "1 second" }
  kill_timeout = "soon"
  timeouts = { create = "forever" }'''
    run_steps(ws, [Step(ws.provider + app("web", body), plan_only=True, expect_error=[
        "Error: Invalid health.interval", "invalid duration 'often'", "Error: Invalid restart.delay",
        "Error: Invalid kill_timeout", "invalid duration 'soon'", "Error: Invalid timeout", "invalid duration 'forever'"])])
    assert_nothing_created(ws, admin, "web")


def test_connects_to_a_missing_target(ws, admin, nodes):
    cfg = ws.provider + app("reader", '  command = "sleep"\n  args = ["60"]\n  connects_to = ["broker"]')
    run_steps(ws, [Step(cfg, plan_only=True, expect_error=[
        "Error: Invalid connects_to[0]", 'connects_to = ["broker"]', "no app or service named 'broker'",
        "refer to it (e.g. stratum_app.<name>.id)"])])
    assert_nothing_created(ws, admin, "reader")


def test_connects_to_a_cycle(ws, admin, nodes):
    # Names, not references: references would make a cycle Terraform itself refuses.
    cfg = ws.provider + app("ping", '  command = "sleep"\n  args = ["60"]\n  connects_to = ["pong"]') \
        + app("pong", '  command = "sleep"\n  args = ["60"]\n  connects_to = ["ping"]')
    run_steps(ws, [Step(cfg, plan_only=True, expect_error=["Error: Invalid connects_to", "connects_to makes a cycle"])])
    out = ws.plan(check=False).output
    assert "ping -> pong -> ping" in out or "pong -> ping -> pong" in out, out
    assert_nothing_created(ws, admin, "ping", "pong")


def test_a_binary_no_node_has(ws, admin, nodes):
    cfg = ws.provider + app("broker", '  command = "frobnicatord"\n  requirements = { binaries = ["frobnicatord"] }')
    run_steps(ws, [Step(cfg, plan_only=True, expect_error=[
        "Error: Invalid requirements.binaries", 'requirements.binaries = ["frobnicatord"]: no node has frobnicatord',
        "reported here: bash"])])  # the programs the nodes do report, in order
    assert_nothing_created(ws, admin, "broker")


def broker(name: str, depends_on: str = "") -> str:
    return app(name, f'  command = "mosquitto"\n  ports = {{ mqtt = 18830 }}\n  requirements = {{ labels = {{ site = "fog" }} }}'
                     + (f"\n  depends_on = [{depends_on}]" if depends_on else ""))


def test_a_fixed_port_taken_on_the_only_fitting_node(ws, admin, nodes):
    """An app that exists holds the port on fog-1, the only node with site=fog."""
    spec = a.AppSpec(name="held", kind="service", command="sleep", args=["600"], ports={"mqtt": 18830},
                     requirements=m.Requirements(labels={"site": "fog"}))
    admin.CreateApp(spec)
    try:
        run_steps(ws, [Step(ws.provider + broker("broker"), plan_only=True, expect_error=[
            'Error: Invalid ports["mqtt"]', 'ports["mqtt"] = 18830: port 18830 is taken', "fog-1 by app held"])])
        assert_nothing_created(ws, admin, "broker")
    finally:  # the module's other tests share this control plane
        admin.DeleteApp(a.DeleteAppRequest(name="held"))
        wait_for(lambda: "held" not in [x.name for x in admin.ListApps(cp_pb.ListAppsRequest()).apps], 30, what="held gone")


def test_a_fixed_port_two_apps_of_one_plan_want_on_the_only_fitting_node(ws, admin, nodes):
    cfg = ws.provider + broker("broker-a") + broker("broker-b", "stratum_app.broker-a")
    run_steps(ws, [Step(cfg, plan_only=True, expect_error=[
        'Error: Invalid ports["mqtt"]', "port 18830", "with stratum_app.broker-b"])])
    out = ws.plan(check=False).output
    assert out.count("Error: ") == 1 and "broker-a" in out.split("Error: ")[1], out  # the second names the first
    assert_nothing_created(ws, admin, "broker-a", "broker-b")


def test_a_secret_env_key_missing_in_vault(ws, admin, nodes):
    cfg = ws.provider + app("history", '''  command = "sleep"
  args = ["60"]
  secret_env = { DB_PASSWORD = "secret/stratum/history#pasword", DB_USER = "secret/stratum/history#user" }''')
    run_steps(ws, [Step(cfg, plan_only=True, expect_error=[
        'Error: Invalid secret_env["DB_PASSWORD"]', "secret/stratum/history", "has no key 'pasword'"])])
    out = ws.plan(check=False).output
    assert SECRET not in out and OTHER_SECRET not in out
    assert 'secret_env["DB_USER"]' not in out  # that key exists
    assert_nothing_created(ws, admin, "history")


def test_a_secret_env_path_vault_does_not_let_it_read(ws, admin, nodes, bao):
    bao.put("secret/other/history", password=SECRET)
    cfg = ws.provider + app("history", '  command = "sleep"\n  args = ["60"]\n'
                                       '  secret_env = { DB_PASSWORD = "secret/other/history#password" }')
    run_steps(ws, [Step(cfg, plan_only=True, expect_error=['Error: Invalid secret_env["DB_PASSWORD"]',
                                                           "secret/other/history"])])
    assert SECRET not in ws.plan(check=False).output
    assert_nothing_created(ws, admin, "history")


def test_an_app_not_ready_in_time_is_deleted_again(ws, admin, nodes):
    """Nothing half-created: a create that times out removes the app (its check never passes)."""
    cfg = ws.provider + app("stuck", '''  command  = "sleep"
  args     = ["600"]
  ports    = { http = 0 }
  health   = { http = "/healthz", grace = "1s", interval = "1s" }
  timeouts = { create = "3s", delete = "30s" }''')
    run_steps(ws, [Step(cfg, expect_error=["Error: App 'stuck' did not become ready"])])
    with pytest.raises(grpc.RpcError) as e:
        admin.GetApp(a.GetAppRequest(name="stuck"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "stratum_app.stuck" not in ws.tf("state", "list", "-no-color").stdout


def test_import_of_a_missing_app(ws, nodes):
    ws.write(ws.provider + app("ghost", '  command = "true"', "batch"))
    res = ws.import_("stratum_app.ghost", "ghost", check=False)
    assert res.rc == 1 and "Cannot import app" in res.output and "no app named 'ghost'" in res.output, res.output
