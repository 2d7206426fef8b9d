"""One app instance on this node, supervised by an asyncio task.

service:  start, watch (process exit, health checks), restart by the restart policy: at most
          `attempts` restarts within `interval`, `delay` before each; when they are used up,
          "delay" waits for the window to pass and goes on, "fail" stays failed until the spec
          changes. A changed spec (version, environment, ports) restarts it at once.
batch / periodic: idle until the assignment lists a run; each run is executed once (its state is
          on disk, node_daemon/apps/runstate.py), with retries by the restart policy; a run that
          exits 0 with an output has its file uploaded before it is reported succeeded.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from pathlib import Path

from node_daemon import metrics
from node_daemon.apps import health
from node_daemon.apps.driver import DriverError, ExecDriver, key_of
from node_daemon.apps.runstate import FINAL, RunBook, RunState
from node_daemon.replicas.cache import Unreachable
from stratum.logs import event
from stratum.v1 import node_agent_pb2 as na

log = logging.getLogger("stratum.node.apps")

POLL_S = 0.2
START_RETRY_S = 5.0  # after a start that failed before the program ran (fetch, unpack, port)
UNREACHABLE_WAIT_S = 2.0  # a run waiting for the control plane to fetch its artifact from tries again
LOG_TAIL = 4000
# A starting instance is checked soon and often, so it is reported healthy close to when it is:
# the next check comes after STARTING_SHARE of the time since the start (a check finds it at most
# 20 % late), at least STARTING_MIN_S and at most min(interval, 1 s) after the last one. Most
# programs are up well within a second; a 1 s step made a 0.1 s start look like 1 s.
STARTING_MIN_S = 0.02
STARTING_SHARE = 0.2


def check_gap(state: str, interval: float, since_start: float) -> float:
    """Seconds until the next health check of an instance in `state`, `since_start` s after its start."""
    if state != "starting":
        return interval
    return min(interval, 1.0, max(STARTING_MIN_S, STARTING_SHARE * since_start))


def fingerprint(a: na.AppAssignment) -> bytes:
    """What a running instance depends on: everything assigned but the list of runs."""
    b = na.AppAssignment()
    b.CopyFrom(a)
    del b.runs[:]
    return hashlib.sha256(b.SerializeToString(deterministic=True)).digest()


def tail(path: Path, limit: int = LOG_TAIL) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


class Instance:
    def __init__(self, driver: ExecDriver, runbook: RunBook, want: na.AppAssignment, *, prepare, upload, report):
        self.driver, self.runbook = driver, runbook
        self.want = want
        self.prepare = prepare  # async (assignment, workdir) -> None: the artifact in place
        self.upload = upload  # async (run id, path) -> sha256 of the stored output
        self.report = report  # () -> None: what this instance reports changed
        self.app, self.index = want.app, want.instance
        self.key = key_of(self.app, self.index)
        self.workdir = driver.workdir(self.app, self.index)
        self.state, self.error = "starting", ""
        self.restarts = 0
        self.ports: dict[str, int] = {}
        self.spec_version = 0
        self.proc = None
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self._stopping = False
        self._starts: deque = deque()  # monotonic times of restarts, for the policy's window

    # -- from the manager -----------------------------------------------------------------------
    def start(self) -> None:
        runner = self._service if self.want.kind == "service" else self._runs
        self.task = asyncio.create_task(runner())

    def update(self, want: na.AppAssignment) -> None:
        self.want = want
        self.wake.set()

    async def stop(self) -> None:
        self._stopping = True
        self.wake.set()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self._kill()
        for run_id in [st.id for st in self.runbook.all() if (st.app, st.instance) == (self.app, self.index)]:
            self.runbook.forget(run_id)

    def status(self) -> na.AppStatus:
        out = na.AppStatus(app=self.app, instance=self.index, spec_version=self.spec_version, state=self.state,
                           restarts=self.restarts, error=self.error)
        if self.state in ("running", "healthy", "unhealthy", "idle"):
            out.endpoints.update({name: self.driver.address(p) for name, p in self.ports.items()})
        for r in self.want.runs:
            st = self.runbook.get(r.id)
            if st is not None and st.state != "pending":
                out.runs.append(st.status())
            elif st is not None and st.attempts:  # retrying after a failed attempt
                out.runs.append(st.status())
        return out

    # -- common ---------------------------------------------------------------------------------
    def _set(self, state: str, error: str = "") -> None:
        if (state, error) != (self.state, self.error):
            self.state, self.error = state, error
            self.report()

    async def _kill(self) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        return await asyncio.to_thread(self.driver.stop, self.key, proc, self.want.kill_timeout_s or 10.0)

    def _limits(self) -> tuple | None:
        a = self.want
        return None if not (a.cpu_limit or a.memory_limit_mb) else (a.cpu_limit or None, a.memory_limit_mb or None)

    async def _launch(self, log_path: Path, run: na.RunOrder | None = None, output: Path | None = None,
                      placed: bool = False) -> None:
        a = self.want
        self.spec_version = a.spec_version
        if not placed:
            await self.prepare(a, self.workdir)
        self.ports = self.driver.pick_ports(dict(a.ports), self.ports)
        for name, port in self.ports.items():
            if a.ports.get(name) and not self.driver.port_free(port):
                raise DriverError(f"port {port} (ports[\"{name}\"]) is taken on this node by another program")
        env = self.driver.environment(a, self.ports, self.workdir, run=run, output=output)
        argv = self.driver.argv(a, env, self.workdir)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as f:
            f.write(f"[stratum] {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {argv[0]} (spec {a.spec_version})\n".encode())
        self.proc = await asyncio.to_thread(self.driver.start, self.key, argv, env, self.workdir, log_path, self._limits())
        event(log, "app started", app=self.app, instance=self.index, pid=self.proc.pid, spec_version=a.spec_version)

    def _policy(self) -> tuple[int, float, float, str]:
        r = self.want.restart
        attempts = r.attempts if r.attempts else 3
        return max(attempts, 0), r.interval_s or 300.0, r.delay_s or 1.0, r.mode or "delay"

    async def _sleep(self, seconds: float) -> bool:
        """Wait `seconds` or until woken (a new assignment); True when woken."""
        self.wake.clear()
        try:
            await asyncio.wait_for(self.wake.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    # -- kind = service -------------------------------------------------------------------------
    async def _service(self) -> None:
        log_path = self.workdir / "logs" / "instance.log"
        while not self._stopping:
            fp = fingerprint(self.want)
            try:
                self.workdir.mkdir(parents=True, exist_ok=True)
                await self._launch(log_path)
            except Exception as e:  # noqa: BLE001 - whatever stops a start is retried: a task that died here left the instance "starting" for good
                self._set("failed", f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}")
                event(log, "app failed to start", level=logging.WARNING, app=self.app, instance=self.index, error=self.error)
                await self._sleep(START_RETRY_S)
                continue
            why = await self._watch(fp)
            if why == "changed":
                await self._kill()
                self._set("starting")
                continue
            code = await self._kill()
            if self._stopping:
                return
            message = why if why != "exited" else f"exited with code {code}"
            attempts, window, delay, mode = self._policy()
            now = time.monotonic()
            while self._starts and now - self._starts[0] > window:
                self._starts.popleft()
            if len(self._starts) >= attempts:
                if mode == "fail":
                    self._set("failed", f"{message}; {attempts} restart(s) within {window:g}s used up; its log ends:\n"
                                        + tail(log_path, 1500))
                    await self._wait_for_change(fp)
                    continue
                self._set("restarting", f"{message}; restarts used up, waiting for the restart window")
                if await self._sleep(window - (now - self._starts[0])) and fingerprint(self.want) != fp:
                    continue
                self._starts.clear()
            self._set("restarting", message)
            if await self._sleep(delay) and fingerprint(self.want) != fp:
                continue
            self._starts.append(time.monotonic())
            self.restarts += 1
            metrics.app_restarted(self.app)
            event(log, "app restarting", level=logging.WARNING, app=self.app, instance=self.index, why=message,
                  restarts=self.restarts)

    async def _wait_for_change(self, fp: bytes) -> None:
        while not self._stopping and fingerprint(self.want) == fp:
            await self._sleep(3600)

    async def _watch(self, fp: bytes) -> str:
        """Until the process exits ("exited"), fails its health check too often, or the spec changes."""
        h = self.want.health
        checked = bool(h.http or h.tcp or h.exec)
        self._set("starting" if checked else "running")
        started, next_check, failures = time.monotonic(), 0.0, 0
        interval, grace = h.interval_s or 5.0, h.grace_s or 30.0
        limit = h.failures or 3
        while True:
            if self._stopping:
                return "stopping"
            if fingerprint(self.want) != fp:
                return "changed"
            if self.proc is None or self.proc.poll() is not None:
                return "exited"
            now = time.monotonic()
            if checked and now >= next_check:
                env = self.driver.environment(self.want, self.ports, self.workdir)
                ok, why = await health.check(h, self.ports, self.driver.local_host, str(self.workdir), env)
                if ok:
                    failures = 0
                    self._set("healthy")
                elif self.state == "starting" and now - started < grace:
                    pass  # still coming up
                else:
                    failures += 1
                    self._set("unhealthy", why)
                    if failures >= limit:
                        return f"health check failed {failures} times: {why}"
                done = time.monotonic()  # the gap runs from the check's end: a slow check never runs back to back
                next_check = done + check_gap(self.state, interval, done - started)
            # process exits are noticed every POLL_S; a check due sooner is not made to wait for it
            await self._sleep(min(POLL_S, max(0.0, next_check - time.monotonic())) if checked else POLL_S)

    # -- kind = batch / periodic ------------------------------------------------------------------
    async def _runs(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.spec_version = self.want.spec_version
        self._set("idle")
        while not self._stopping:
            order = self._next_run()
            if order is None:
                self.spec_version = self.want.spec_version
                self._set("idle")
                await self._sleep(3600)
                continue
            await self._execute(order)

    def _next_run(self) -> na.RunOrder | None:
        for r in self.want.runs:
            st = self.runbook.get(r.id)
            if st is None or st.state not in FINAL:
                return r
        return None

    async def _execute(self, order: na.RunOrder) -> None:
        st = self.runbook.get(order.id) or RunState(order.id, order.number, self.app, self.index)
        log_path = self.workdir / "runs" / f"{order.number}.log"
        output = (self.workdir / "outputs" / f"run-{order.number}.{order.output_format}") if order.output_format else None
        attempts, _, delay, _ = self._policy()
        fp = fingerprint(self.want)
        while not self._stopping:
            if st.state == "uploading":
                await self._finish_upload(st, output)
                return
            # The artifact before the attempt: a control plane away (restarting, a leader killed) is no
            # failed attempt of a run that has not started; it is waited for. Other errors fail it below.
            unplaced: Exception | None = None
            try:
                await self.prepare(self.want, self.workdir)
            except Unreachable as e:
                event(log, "run waits for the control plane", level=logging.WARNING, app=self.app, run=order.number,
                      error=str(e)[:300])
                await self._sleep(UNREACHABLE_WAIT_S)
                continue
            except Exception as e:  # noqa: BLE001 - the attempt below fails with it, as any start does
                unplaced = e
            st.attempts += 1
            st.state, st.started_at = "running", st.started_at or time.time()
            self.runbook.save(st)
            self._set("running")
            try:
                if unplaced is not None:
                    raise unplaced  # not fetched again: the attempt fails with what the fetch said
                if output is not None:
                    output.parent.mkdir(parents=True, exist_ok=True)
                    output.unlink(missing_ok=True)
                await self._launch(log_path, run=order, output=output, placed=True)
                why = await self._watch_run(fp)
            except Exception as e:  # noqa: BLE001 - the run fails with the reason; the task goes on
                why, self.proc = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}", None
            code = await self._kill()
            if self._stopping:
                return
            st.log_tail = tail(log_path)
            if why == "changed":  # the app changed under the run: it ends here, the new spec gets its own
                st.state, st.exit_code, st.ended_at = "failed", code, time.time()
                st.output_error = "stopped: the app's spec changed during the run"
                self.runbook.save(st)
                self.report()
                return
            st.exit_code = code
            if code == 0 and why == "exited":
                if output is not None:
                    st.state = "uploading"
                    self.runbook.save(st)
                    await self._finish_upload(st, output)
                else:
                    st.state, st.ended_at = "succeeded", time.time()
                    self.runbook.save(st)
                event(log, "app run ended", app=self.app, run=order.number, state=st.state, attempts=st.attempts)
                self.report()
                return
            if why != "exited":
                st.output_error = why
            if st.attempts > attempts:
                st.state, st.ended_at = "failed", time.time()
                self.runbook.save(st)
                event(log, "app run failed", level=logging.WARNING, app=self.app, run=order.number, exit_code=code,
                      attempts=st.attempts)
                self.report()
                return
            st.state = "pending"
            self.runbook.save(st)
            self.restarts += 1
            metrics.app_restarted(self.app)
            self.report()
            await self._sleep(delay)

    async def _watch_run(self, fp: bytes) -> str:
        while True:
            if self._stopping:
                return "stopping"
            if fingerprint(self.want) != fp:
                return "changed"
            if self.proc is None or self.proc.poll() is not None:
                return "exited"
            await self._sleep(POLL_S)

    async def _finish_upload(self, st: RunState, output: Path | None) -> None:
        """Upload the output (retrying while the control plane is away), then the run succeeded."""
        if output is None or not output.is_file():
            st.state, st.ended_at = "succeeded", time.time()
            st.output_error = f"the run exited 0 but wrote no file at $STRATUM_OUTPUT ({output.name if output else '-'})"
            self.runbook.save(st)
            return
        while not self._stopping:
            try:
                st.output_sha256 = await self.upload(st.id, output)
                break
            except Exception as e:  # noqa: BLE001 - no session now: the output waits on disk
                event(log, "output upload failed; retrying", level=logging.WARNING, app=self.app, run=st.number,
                      error=f"{type(e).__name__}: {str(e)[:200]}")
                await asyncio.sleep(2.0)
        st.state, st.ended_at = "succeeded", time.time()
        self.runbook.save(st)
