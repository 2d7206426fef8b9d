"""A starting app instance is health-checked soon and often (node_daemon/apps/instance.py's
check_gap), so it is reported healthy at the first check that passes, not up to a second later;
once healthy, checks keep the configured interval. The second test runs a real process under the
real exec driver and counts the checks it receives."""

from __future__ import annotations

import asyncio
import sys

import pytest

from node_daemon.apps import instance as inst
from node_daemon.apps.driver import ExecDriver
from node_daemon.apps.runstate import RunBook
from stratum.v1 import apps_pb2 as a, node_agent_pb2 as na


@pytest.mark.parametrize("interval", [0.01, 0.5, 5.0, 60.0])
def test_starting_checks_follow_the_time_since_the_start_within_the_interval(interval):
    cap = min(interval, 1.0)
    for since in [0.0, 0.05, 0.1, 0.3, 1.0, 4.0, 10.0, 100.0]:
        gap = inst.check_gap("starting", interval, since)
        assert gap <= cap
        assert gap >= min(cap, inst.STARTING_MIN_S)
        assert gap <= max(inst.STARTING_MIN_S, inst.STARTING_SHARE * since)  # found at most 20 % late
    assert [inst.check_gap(s, interval, 3.0) for s in ("healthy", "unhealthy")] == [interval, interval]


# Answers 503 to every probe for its first second, 200 after; writes one line per probe it answered.
SERVER = r"""
import http.server, os, time
t0 = time.monotonic()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if time.monotonic() - t0 >= 1.0 else 503
        with open("probes.log", "a") as f:
            f.write(f"{code}\n")
        self.send_response(code)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["STRATUM_PORT_HTTP"])), H).serve_forever()
"""


def test_a_starting_instance_is_healthy_at_the_first_check_that_passes(tmp_path):
    driver = ExecDriver(tmp_path / "apps")
    want = na.AppAssignment(app="web", instance=0, kind="service", spec_version=1, command=sys.executable,
                            args=["server.py"], ports={"http": 0}, kill_timeout_s=2,
                            health=a.HealthCheck(http="/", interval_s=5, grace_s=30))
    workdir = driver.workdir("web", 0)
    seen_at_healthy: list[list[str]] = []

    async def prepare(assignment, wd):
        wd.mkdir(parents=True, exist_ok=True)
        (wd / "server.py").write_text(SERVER)

    def report():
        if ins.state == "healthy" and not seen_at_healthy:
            seen_at_healthy.append((workdir / "probes.log").read_text().split())

    async def scenario():
        nonlocal ins
        ins = inst.Instance(driver, RunBook(driver.root), want, prepare=prepare, upload=None, report=report)
        ins.start()
        try:
            for _ in range(600):  # up to 30 s of 50 ms polls: a loaded machine only makes it slower
                if seen_at_healthy or ins.state == "failed":
                    break
                await asyncio.sleep(0.05)
        finally:
            await ins.stop()

    ins = None
    asyncio.run(scenario())
    assert seen_at_healthy, f"never healthy: {ins.state} {ins.error}"
    probes = seen_at_healthy[0]
    # healthy at the first check that passed, after many checks during its one unready second
    # (the old schedule, one check a second while starting, made two at most)
    assert probes[-1] == "200" and probes.count("200") == 1
    assert probes.count("503") >= 5, probes


def test_a_start_that_fails_in_any_way_is_retried_and_never_leaves_the_instance_starting(tmp_path, monkeypatch):
    """A failure before the program runs (the artifact's fetch cut by a session change, a timeout
    with no message, an unexpected error) is reported and retried; the task once died on an
    exception type it did not expect, or on formatting an empty message, and the instance stayed
    "starting" with nothing running until the node restarted."""
    monkeypatch.setattr(inst, "START_RETRY_S", 0.05)
    driver = ExecDriver(tmp_path / "apps")
    want = na.AppAssignment(app="job", instance=0, kind="service", spec_version=1, command=sys.executable,
                            args=["-c", "import time; time.sleep(60)"], kill_timeout_s=2)
    failures = [TimeoutError(), ValueError("unexpected\nsecond line")]
    errors: list[str] = []

    async def prepare(assignment, wd):
        wd.mkdir(parents=True, exist_ok=True)
        if failures:
            raise failures.pop(0)

    def report():
        if ins is not None and ins.state == "failed":
            errors.append(ins.error)

    async def scenario():
        nonlocal ins
        ins = inst.Instance(driver, RunBook(driver.root), want, prepare=prepare, upload=None, report=report)
        ins.start()
        try:
            for _ in range(400):
                if ins.state == "running" or ins.task.done():
                    break
                await asyncio.sleep(0.05)
            return ins.state, ins.task.done()
        finally:
            await ins.stop()

    ins = None
    state, dead = asyncio.run(scenario())
    assert not dead and state == "running", (state, errors)
    assert errors == ["TimeoutError: ", "ValueError: unexpected"]


def test_a_run_waits_for_the_control_plane_without_spending_its_attempts(tmp_path, monkeypatch):
    """A run whose artifact cannot be fetched because the control plane is away (restarting, its
    leader killed) waits for it: the run has not started, so no attempt is spent. It once spent them,
    and a run allowed one retry failed across a control-plane restart."""
    from node_daemon.replicas.cache import Unreachable

    monkeypatch.setattr(inst, "UNREACHABLE_WAIT_S", 0.05)
    driver = ExecDriver(tmp_path / "apps")
    want = na.AppAssignment(app="job", instance=0, kind="batch", spec_version=1, command=sys.executable,
                            args=["-c", "print('ran')"], kill_timeout_s=2, restart=a.RestartPolicy(attempts=1),
                            runs=[na.RunOrder(id="run-1", number=1)])
    away = 3  # fetches refused before the control plane is back

    async def prepare(assignment, wd):
        nonlocal away
        wd.mkdir(parents=True, exist_ok=True)
        if away:
            away -= 1
            raise Unreachable("no session with the control plane to fetch the artifact from")

    async def scenario():
        book = RunBook(driver.root)
        ins = inst.Instance(driver, book, want, prepare=prepare, upload=None, report=lambda: None)
        ins.start()
        try:
            for _ in range(400):
                st = book.get("run-1")
                if st is not None and st.state in ("succeeded", "failed"):
                    return st
                await asyncio.sleep(0.05)
            return book.get("run-1")
        finally:
            await ins.stop()

    st = asyncio.run(scenario())
    assert away == 0 and (st.state, st.attempts, st.exit_code) == ("succeeded", 1, 0), st
