"""`stratum demo --keep` end to end, as a user runs it (real control plane, three node daemons,
terraform, mosquitto, the smart-traffic pipeline), then what it printed checked against the running
system: the figures are the pipeline's own (the processor's counters, the recorded aggregate run
and the dataset version it made, the dashboard), the printed instructions work (env.sh, `stratum
app runs`, an empty `terraform plan`), and stop.sh leaves no process behind."""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import urllib.request

import httpx
import psutil
import pytest

from stratum.grpc_util import bearer, secure_channel
from stratum.v1 import apps_pb2 as a, control_plane_pb2_grpc as cp_grpc, datasets_pb2 as ds

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# terraform and mosquitto are required parts (scripts/setup installs them, scripts/test checks): a
# missing one fails the demo, never skips this test.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]


def figure(pattern: str, text: str) -> tuple[str, ...]:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in the demo's output:\n{text[-4000:]}"
    return found.groups()


def demo_processes(workdir: str) -> list[psutil.Process]:
    """Living processes the demo left: started with its paths, or working under its directory."""
    out = []
    for p in psutil.process_iter(["cmdline", "cwd"]):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and (workdir in " ".join(p.info["cmdline"] or [])
                                                       or (p.info["cwd"] or "").startswith(workdir)):
                out.append(p)
        except psutil.Error:
            pass
    return out


def in_shell(workdir: str, command: str, cwd: str = REPO, timeout: float = 300) -> subprocess.CompletedProcess:
    """command in a fresh shell that sourced the demo's env.sh, as its --keep output says to."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRATUM_", "TF_"))}
    env["COLUMNS"] = "250"
    return subprocess.run(["bash", "-c", f"source {workdir}/env.sh && {command}"], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def test_the_demo_shows_the_pipeline_working_and_keep_leaves_it_running(tmp_path):
    workdir = str(tmp_path / "demo")
    env = {**os.environ, "COLUMNS": "250"}
    try:
        res = subprocess.run([sys.executable, "-m", "cli", "demo", "--workdir", workdir, "--keep"], capture_output=True,
                             text=True, cwd=REPO, env=env, timeout=1500)
        out = res.stdout
        assert res.returncode == 0, f"{out[-6000:]}\n{res.stderr[-3000:]}"

        rate = float(figure(r"messages per second through the broker: ([\d.]+)", out)[0])
        decisions = int(figure(r"decisions made: (\d+)", out)[0])
        number, state, version = figure(r"latest batch run: aggregate #(\d+) (\w+) .*output → dataset version (\d+)",
                                        out)
        dataset_version, rows = map(int, figure(r"dataset traffic: version (\d+), (\d+) rows", out))
        dashboard = figure(r"visualisation: (http://\S+)", out)[0]
        assert f"the traffic app:      {dashboard}" in out and f"source {workdir}/env.sh" in out
        # Stratum's own dashboard, served by the control plane over TLS with its CA
        stratum_ui = figure(r"Stratum's dashboard:  (https://\S+)", out)[0]
        data_dir = os.path.join(workdir, "control-plane")
        with open(os.path.join(data_dir, "admin.token")) as f:
            admin = f.read().strip()
        trust = ssl.create_default_context(cafile=os.path.join(data_dir, "ca.pem"))
        with httpx.Client(base_url=stratum_ui, verify=trust, timeout=30) as ui:
            assert ui.post("/login", data={"token": admin}).status_code == 303
            assert "sensors" in ui.get("/api/overview").text and ui.get("/apps/aggregate").status_code == 200

        # the figures against the running system
        with open(os.path.join(data_dir, "ca.pem"), "rb") as f:
            stub = cp_grpc.ControlPlaneStub(secure_channel(figure(r"control plane on (\S+)", out)[0], f.read()))
        with open(os.path.join(data_dir, "admin.token")) as f:
            md = bearer(f.read().strip())
        runs = {r.number: r for r in stub.ListAppRuns(a.ListAppRunsRequest(name="aggregate", limit=100), metadata=md,
                                                       timeout=10).runs}
        run = runs[int(number)]
        assert (run.state, run.dataset_version) == (state, int(version)) == ("succeeded", int(version))
        assert run.node_name == "cloud-1"  # the node labelled cloud
        dataset = stub.GetDataset(ds.GetDatasetRequest(name="traffic"), metadata=md, timeout=10)
        assert dataset.version >= dataset_version >= int(version) >= 2  # version 1 is data/traffic.csv
        assert rows > 0 and dataset.row_count >= rows

        sensors = stub.GetApp(a.GetAppRequest(name="sensors"), metadata=md, timeout=10)
        intersections = len(sensors.instances) * int(sensors.spec.env["INTERSECTIONS_PER_INSTANCE"])
        expected_rate = intersections * float(sensors.spec.env["RATE"])
        assert 0.5 * expected_rate <= rate <= 1.5 * expected_rate, (rate, expected_rate)
        processor = stub.GetApp(a.GetAppRequest(name="processor"), metadata=md, timeout=10)
        (address,) = processor.endpoints["http"].addresses
        with urllib.request.urlopen(f"http://{address}/stats", timeout=10) as r:
            stats = json.loads(r.read())
        assert stats["decisions"] >= decisions > 0 and stats["model_errors"] <= stats["model_calls"]
        with urllib.request.urlopen(dashboard + "api/state", timeout=10) as r:
            state_now = json.loads(r.read())
        assert len(state_now["intersections"]) == intersections
        with urllib.request.urlopen(dashboard, timeout=10) as r:
            assert r.status == 200 and b"<svg" in r.read().lower()

        # the printed instructions work
        listed = in_shell(workdir, "stratum app runs aggregate")
        assert listed.returncode == 0 and "runs of app aggregate" in listed.stdout, listed.stderr
        assert re.search(rf"│\s*{number}\s*│\s*succeeded", listed.stdout), listed.stdout
        traffic_dir = figure(r"cd (\S+) && terraform plan", out)[0]
        plan = in_shell(workdir, "terraform plan -detailed-exitcode -input=false -no-color", cwd=traffic_dir)
        assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]  # 0: no changes

        stop = subprocess.run([os.path.join(workdir, "stop.sh")], capture_output=True, text=True, timeout=300)
        assert stop.returncode == 0, stop.stderr
        assert demo_processes(workdir) == []
    finally:
        for p in demo_processes(workdir):
            p.kill()
