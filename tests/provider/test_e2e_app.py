"""stratum_app end to end: real terraform, control plane and node daemon, whose exec driver runs
the apps' processes. A service app serving HTTP (import, in-place update), an app wired to it, a
periodic app, batch apps from an artifact whose run succeeds or fails, and a destroy that leaves
no process behind."""

from __future__ import annotations

import os
import urllib.request

import grpc
import psutil
import pytest

from stratum.v1 import apps_pb2 as a
from tests.harness import wait_for
from tests.provider.tfharness import Step, run_steps

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

WEB = '''
resource "stratum_app" "web" {
  name    = "web"
  kind    = "service"
  command = "python3"
  args    = ["-m", "http.server", "$${STRATUM_PORT_HTTP}"]
  env     = { GREETING = "%s" }
  ports   = { http = 0 }
  health  = { http = "/", interval = "1s", grace = "20s" }
  kill_timeout = "3s"
}
'''

JOB = '''
resource "stratum_app" "job" {
  name     = "job"
  kind     = "batch"
  artifact = "job"
  command  = "python3"
  args     = ["run.py", "$${STRATUM_RUN}"]
}
'''

# Wired to web (STRATUM_WEB_URL), and a periodic app that is idle until New Year.
MORE = '''
resource "stratum_app" "client" {
  name        = "client"
  kind        = "service"
  command     = "sleep"
  args        = ["600"]
  connects_to = [stratum_app.web.id]
}

resource "stratum_app" "tick" {
  name     = "tick"
  kind     = "periodic"
  command  = "true"
  schedule = { cron = "0 0 1 1 *", time_zone = "Europe/Berlin" }
}
'''

BAD = '''
resource "stratum_app" "bad" {
  name     = "bad"
  kind     = "batch"
  artifact = "bad.py"
  command  = "python3"
  args     = ["bad.py"]
  restart  = { attempts = -1 }
}
'''


@pytest.fixture
def node(control_plane, start_node, admin):
    n = start_node("edge-1", tier="edge")
    wait_for(lambda: admin.nodes().get("edge-1") and admin.nodes()["edge-1"].state == "ready", 30, what="node ready")
    return n


def answers(endpoint: str) -> bool:
    with urllib.request.urlopen(f"http://{endpoint}/", timeout=5) as r:
        return r.status == 200


def processes_under(directory: str) -> list[psutil.Process]:
    """Processes whose working directory is under `directory` (other tests on this machine run apps too)."""
    out = []
    for p in psutil.process_iter(["cwd"]):
        cwd = p.info.get("cwd") or ""
        if cwd == directory or cwd.startswith(directory + os.sep):
            out.append(p)
    return out


def web_processes(node) -> list[psutil.Process]:
    """The web app's http.server processes on this test's node."""
    out = []
    for p in processes_under(os.path.join(node.data_dir, "apps")):
        try:
            if "http.server" in " ".join(p.cmdline()) and p.environ().get("STRATUM_APP") == "web":
                out.append(p)
        except psutil.Error:
            continue
    return out


def test_apps_run_update_import_fail_and_are_destroyed(ws, admin, node):
    job = ws.dir / "job"
    (job / "lib").mkdir(parents=True)
    (job / "lib" / "__init__.py").write_text("")
    (job / "lib" / "greet.py").write_text("def line(run):\n    return f'{run}: the job done'\n")
    (job / "run.py").write_text("import sys\nfrom lib.greet import line\nprint(line(sys.argv[1]))\n")
    (ws.dir / "bad.py").write_text("import sys\nprint('boom-marker: the input is missing', file=sys.stderr)\nsys.exit(3)\n")

    def web_ready(version: int):
        def check(ws):
            r = ws.resources()["stratum_app.web"]
            assert r["state"] == "ready" and r["spec_version"] == version, r
            assert [i["state"] for i in r["instances"]] == ["healthy"] and r["instances"][0]["node_name"] == "edge-1"
            (endpoint,) = r["endpoints"]["http"]
            assert answers(endpoint)
            assert r["artifact_sha256"] is None and r["last_run"] is None and r["next_run_at"] is None
            greeting = "hello" if version == 1 else "hi"  # the process has the app's env; the old one is gone
            wait_for(lambda: [p.environ().get("GREETING") for p in web_processes(node)] == [greeting], 15,
                     what="one web process, with the new env")
        return check

    def job_succeeded(run: int):
        def check(ws):
            r = ws.resources()["stratum_app.job"]
            assert r["state"] == "ready" and r["spec_version"] == run, r
            last = r["last_run"]
            assert (last["number"], last["state"], last["exit_code"], last["dataset_version"]) == (run, "succeeded", 0, None), r
            assert len(r["artifact_sha256"]) == 64
            logs = b"".join(c.data for c in admin.StreamAppLogs(a.StreamAppLogsRequest(name="job"))).decode()
            assert ("the job done, again" in logs) == (run == 2) and "the job done" in logs, logs
        return check

    def wired_and_scheduled(ws):
        job_succeeded(1)(ws)
        r = ws.resources()
        (endpoint,) = r["stratum_app.web"]["endpoints"]["http"]
        (client,) = [p for p in processes_under(os.path.join(node.data_dir, "apps")) if p.environ().get("STRATUM_APP") == "client"]
        assert client.environ()["STRATUM_WEB_URL"] == f"http://{endpoint}"
        tick = r["stratum_app.tick"]
        assert tick["state"] == "ready" and tick["last_run"] is None and tick["instances"][0]["state"] == "idle", tick
        assert tick["next_run_at"].endswith("T23:00:00Z") and "-12-31T" in tick["next_run_at"], tick  # midnight in Berlin

    run_steps(ws, [
        Step(ws.provider + WEB % "hello", check=web_ready(1), import_address="stratum_app.web", import_id="web"),
        Step(ws.provider + WEB % "hi", check=web_ready(2)),  # in place: env changes, the endpoint answers again
        Step(ws.provider + WEB % "hi" + JOB + MORE, check=wired_and_scheduled),
    ])

    # An edited file of the artifact plans an in-place update, although the configuration is the same.
    before = ws.resources()["stratum_app.job"]["artifact_sha256"]
    (job / "lib" / "greet.py").write_text("def line(run):\n    return f'{run}: the job done, again'\n")
    res = ws.plan()
    assert res.rc == 2 and "stratum_app.job will be updated in-place" in res.output and "artifact_sha256" in res.output, res.output
    run_steps(ws, [Step(ws.provider + WEB % "hi" + JOB + MORE, check=job_succeeded(2))])
    assert ws.resources()["stratum_app.job"]["artifact_sha256"] != before

    # A run that fails: apply fails with the end of its log, and nothing is left of it.
    run_steps(ws, [Step(ws.provider + WEB % "hi" + JOB + MORE + BAD,
                        expect_error=["Error: App 'bad' did not become ready", "exit code 3", "boom-marker: the input is missing"])])
    assert "stratum_app.bad" not in ws.resources()
    with pytest.raises(grpc.RpcError) as e:
        admin.GetApp(a.GetAppRequest(name="bad"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND

    # Destroy: no process of any app is left, nor any in the node's app working directories.
    running = web_processes(node)
    assert len(running) == 1
    ws.write(ws.provider + WEB % "hi" + JOB + MORE)
    ws.destroy()
    gone, alive = psutil.wait_procs(running, timeout=5)
    assert not alive and not web_processes(node)
    assert processes_under(os.path.join(node.data_dir, "apps")) == []
    for name in ("web", "job", "client", "tick"):
        with pytest.raises(grpc.RpcError) as e:
            admin.GetApp(a.GetAppRequest(name=name))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
