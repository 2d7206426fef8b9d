"""`stratum app show|runs|logs|run-now` as a user runs them (the console script's module in a
subprocess) against a real control plane and node daemon: the runs table against what the API
records, a run's log, --tail, --follow receiving what a service writes while it runs and ending
cleanly on Ctrl-C, SIGTERM, the app's deletion or the followed run's end, and clear errors."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import grpc
import pytest

from stratum.v1 import apps_pb2 as a, datasets_pb2 as ds
from tests.harness import stratum_argv, wait_for
from tests.integration.test_apps import WEB, get, wait_state
from tests.lifecycle import upload

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "COLUMNS": "300"}  # rich tables as wide as their content

JOB = a.AppSpec(name="job", kind="batch", command="bash", outputs=a.AppOutputs(dataset="points", mode="append"), args=[
    "-c", 'echo "aggregating run $STRATUM_RUN"; for i in $(seq 1 40); do echo "row $i of run $STRATUM_RUN"; done; '
          'printf "x,y\\n$STRATUM_RUN,1\\n" > "$STRATUM_OUTPUT"'])


def cli(cp, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(stratum_argv("app", "--endpoint", cp.endpoint, "--data-dir", cp.data_dir, *args),
                          capture_output=True, text=True, timeout=timeout, cwd=REPO, env=ENV)


def popen(cp, *args: str) -> subprocess.Popen:
    return subprocess.Popen(stratum_argv("app", "--endpoint", cp.endpoint, "--data-dir", cp.data_dir, *args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=ENV)


def table_rows(text: str) -> list[list[str]]:
    """The body rows of a rich table (cells between │), those whose first cell is a number."""
    rows = []
    for line in text.splitlines():
        if "│" in line:
            cells = [c.strip() for c in line.strip().strip("│").split("│")]
            if cells and cells[0].isdigit():
                rows.append(cells)
    return rows


def when(ts) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts.seconds)) if ts.seconds else "-"


def read_until(proc: subprocess.Popen, needle: bytes, timeout: float = 30) -> bytes:
    """What proc wrote on stdout until needle appeared (AssertionError after timeout)."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} not seen in {timeout} s; got {seen[-2000:]!r}"
        if sel.select(min(left, 1.0)):
            data = os.read(proc.stdout.fileno(), 65536)
            assert data, f"the CLI ended before {needle!r} came: {seen[-2000:]!r}, stderr {proc.stderr.read()!r}"
            seen += data
    return seen


def request(address: str) -> bytes:
    """GET a path never asked before (a 404, which http.server logs all the same); its path."""
    path = f"/marker-{uuid.uuid4().hex}"
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"http://{address}{path}", timeout=5)
    return path.encode()


def ended(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, str]:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the CLI did not end") from None
    return proc.returncode, proc.stderr.read().decode()


@pytest.fixture
def node(control_plane, start_node):
    n = start_node("edge-1", tier="edge")
    c = control_plane.client()
    wait_for(lambda: c.nodes().get("edge-1") and c.nodes()["edge-1"].state == "ready", 30, what="node ready")
    return n


def test_runs_and_logs_of_a_batch_app(control_plane, node):
    cp, c = control_plane, control_plane.client()
    c.CreateDataset(ds.DatasetSpec(name="points", source="file://points.csv", blob_sha256=upload(c, b"x,y\n0,0\n")))
    c.CreateApp(JOB)
    wait_state(c, "job")
    res = cli(cp, "run-now", "job")
    assert res.returncode == 0 and "run 2 of app job recorded" in res.stdout, res.stderr
    wait_for(lambda: c.ListAppRuns(a.ListAppRunsRequest(name="job")).runs[0].state == "succeeded", 60, what="run 2")

    # the table holds what the API records, newest first
    res = cli(cp, "runs", "job")
    assert res.returncode == 0, res.stderr
    runs = c.ListAppRuns(a.ListAppRunsRequest(name="job")).runs
    rows = table_rows(res.stdout)
    assert [r[0] for r in rows] == [str(r.number) for r in runs] == ["2", "1"]
    for row, run in zip(rows, runs):
        number, state, scheduled, started, end, duration, exit_code, attempts, version, node_name = row[:10]
        assert (state, exit_code, attempts, version, node_name) == (
            run.state, str(run.exit_code), str(run.attempts), str(run.dataset_version), run.node_name)
        assert (scheduled, started, end) == (when(run.scheduled_for), when(run.started_at), when(run.ended_at))
        assert duration.endswith("s") and duration != "-"
    assert "dataset points" in res.stdout
    assert {r.dataset_version for r in runs} == {2, 3}  # each run's output became a version
    assert cli(cp, "runs", "job", "--limit", "1").stdout.count("succeeded") == 1

    # a run's log: the latest by default, or the one asked for
    latest = cli(cp, "logs", "job")
    assert latest.returncode == 0 and "aggregating run 2" in latest.stdout and "run 1" not in latest.stdout
    first = cli(cp, "logs", "job", "--run", "1")
    assert first.returncode == 0 and "aggregating run 1" in first.stdout and "row 40 of run 1" in first.stdout
    assert "on node edge-1" in first.stderr
    # --tail N: the last N lines of the whole log
    tail = cli(cp, "logs", "job", "--run", "1", "--tail", "3")
    assert tail.returncode == 0 and tail.stdout.splitlines() == first.stdout.splitlines()[-3:]
    # --follow of a run that has ended prints its log and ends
    followed = cli(cp, "logs", "job", "--run", "1", "--follow")
    assert followed.returncode == 0 and followed.stdout == first.stdout

    shown = cli(cp, "show", "job")
    assert shown.returncode == 0 and "batch" in shown.stdout and "edge-1" in shown.stdout
    assert table_rows(shown.stdout)[-1][:2] == ["2", "succeeded"]  # its latest run


def test_follow_a_service_log_and_stop_it(control_plane, node):
    cp, c = control_plane, control_plane.client()
    c.CreateApp(WEB)
    (address,) = wait_state(c, "web").endpoints["http"].addresses
    proc = popen(cp, "logs", "web", "--follow")
    try:
        # http.server logs each request: a request made after the follow began shows up in it
        for _ in range(2):
            read_until(proc, request(address))
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        rc, err = ended(proc)
        assert rc == 0 and "Traceback" not in err and "following" in err, err
    finally:
        if proc.poll() is None:
            proc.kill()

    # SIGTERM ends it as cleanly; so does the app going away
    proc = popen(cp, "logs", "web", "--follow", "--tail", "2")
    read_until(proc, request(address))
    proc.terminate()
    rc, err = ended(proc)
    assert rc == 0 and "Traceback" not in err, err

    # the log grows (health checks): the 2 lines are consecutive lines of the log read after them
    tail = cli(cp, "logs", "web", "--tail", "2")
    full = cli(cp, "logs", "web").stdout.splitlines()
    lines = tail.stdout.splitlines()
    assert tail.returncode == 0 and len(lines) == 2
    assert any(full[i:i + 2] == lines for i in range(len(full) - 1))

    proc = popen(cp, "logs", "web", "--follow")
    read_until(proc, request(address))
    c.DeleteApp(a.DeleteAppRequest(name="web"))
    rc, err = ended(proc)
    assert rc == 0 and "Traceback" not in err, err


def test_follow_a_running_batch_until_it_ends(control_plane, node):
    cp, c = control_plane, control_plane.client()
    c.CreateApp(a.AppSpec(name="slow", kind="batch", command="bash",
                          args=["-c", "echo started; sleep 3; echo halfway; sleep 2; echo finished; exit 4"],
                          restart=a.RestartPolicy(attempts=-1)))
    wait_for(lambda: get(c, "slow").last_run.state in ("running", "failed"), 30, what="slow running")
    proc = popen(cp, "logs", "slow", "--follow")
    out = read_until(proc, b"finished")
    rc, err = ended(proc)
    assert rc == 0 and b"started" in out and b"halfway" in out, err
    run = c.ListAppRuns(a.ListAppRunsRequest(name="slow")).runs[0]
    assert f"ended: {run.state}, exit code {run.exit_code}" in err and run.exit_code == 4


def test_errors_name_what_is_wrong(control_plane, node):
    cp, c = control_plane, control_plane.client()
    c.CreateApp(WEB)
    c.CreateApp(a.AppSpec(name="once", kind="batch", command="echo", args=["done"]))
    wait_state(c, "web")
    wait_state(c, "once")

    def refused(*args: str) -> str:
        res = cli(cp, *args)
        assert res.returncode == 1 and "Traceback" not in res.stderr, (res.returncode, res.stderr)
        return " ".join(res.stderr.split())

    for cmd in ("runs", "logs", "show", "run-now"):
        assert "app 'nosuch' not found" in refused(cmd, "nosuch")
    assert "--run 7: app once has runs 1 to 1" in refused("logs", "once", "--run", "7")
    assert "--run -1" in refused("logs", "once", "--run", "-1")
    assert "--run 1: app web is a service" in refused("logs", "web", "--run", "1")
    assert "--instance 3: app web has instances 0 to 0" in refused("logs", "web", "--instance", "3")
    assert "app web is a service: it has instances, not runs" in refused("runs", "web")
    assert "only batch and periodic apps have runs" in refused("run-now", "web")
    assert "--tail -2" in refused("logs", "web", "--tail", "-2")
    assert "--limit 0: give 1 to 1000" in refused("runs", "once", "--limit", "0")
    # a control plane that is not there
    res = subprocess.run(stratum_argv("app", "--endpoint", "127.0.0.1:1", "--data-dir", cp.data_dir, "runs", "once"),
                         capture_output=True, text=True, timeout=60, cwd=REPO, env=ENV)
    assert res.returncode == 1 and "cannot reach the Stratum control plane at 127.0.0.1:1" in res.stderr
    with pytest.raises(grpc.RpcError):
        c.GetApp(a.GetAppRequest(name="nosuch"))
