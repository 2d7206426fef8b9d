"""Run the app instances the control plane assigns to this node (node_daemon/apps/instance.py).

The agent hands each Assignments message's apps to `AppManager.apply`: new instances start, changed
ones get their new assignment (they restart themselves when what they run changed), those no
longer listed are stopped and their working directories removed. What runs keeps running while
the control plane is away (house rule); only a new Assignments message changes anything.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from node_daemon.apps.artifacts import ArtifactCache
from node_daemon.apps.driver import ExecDriver
from node_daemon.apps.instance import Instance
from node_daemon.apps.runstate import RunBook
from node_daemon.replicas.cache import Unreachable
from node_daemon.transfer import download
from stratum.logs import event
from stratum.v1 import node_agent_pb2 as na

log = logging.getLogger("stratum.node.apps")

LOG_CHUNK = 64 * 1024
FOLLOW_POLL_S = 0.5


class AppManager:
    def __init__(self, driver: ExecDriver, artifacts: ArtifactCache, *, fetch=None, upload=None, report=lambda: None):
        self.driver, self.artifacts = driver, artifacts
        self.fetch = fetch  # (digest, offset) -> async iterator of chunks (FetchBlob); set by the agent
        self.upload = upload  # async (run id, path) -> sha256 (UploadOutput); set by the agent
        self.report = report
        self.runbook = RunBook(driver.root)
        self.instances: dict[tuple[str, int], Instance] = {}
        self.generation = 0
        self._lock = asyncio.Lock()  # Assignments apply one at a time, in arrival order
        self._follows: dict[int, asyncio.Task] = {}  # log request id -> its task
        # One download per artifact at a time: instances placed together (replicas, apps of one
        # artifact) would otherwise write the same partial file side by side.
        self._fetching: dict[str, asyncio.Lock] = {}

    def start(self) -> list[int]:
        """Before the first session: stop what a killed daemon left, and note the runs it interrupted."""
        reaped = self.driver.reap()
        if reaped:
            event(log, "stopped app processes left by an earlier run", pids=reaped)
        for st in self.runbook.interrupted():
            event(log, "app run interrupted by a daemon restart", app=st.app, run=st.number, attempts=st.attempts)
        return reaped

    async def apply(self, assignments: na.Assignments) -> None:
        async with self._lock:
            if assignments.generation < self.generation:
                return  # an older message overtaken by a newer one
            self.generation = assignments.generation
            wanted = {(a.app, a.instance): a for a in assignments.apps}
            for key, a in wanted.items():
                ins = self.instances.get(key)
                if ins is None:
                    ins = self.instances[key] = Instance(self.driver, self.runbook, a, prepare=self._prepare,
                                                         upload=self._upload, report=self.report)
                    event(log, "app assigned", app=a.app, instance=a.instance, kind=a.kind)
                    ins.start()
                else:
                    ins.update(a)
            for key in [k for k in self.instances if k not in wanted]:
                await self._remove(key)
            self._forget_runs(wanted)
        self.report()

    def _forget_runs(self, wanted: dict) -> None:
        """Runs no longer listed were recorded by the control plane: their state on disk can go."""
        listed = {r.id for a in wanted.values() for r in a.runs}
        for st in self.runbook.all():
            if st.id not in listed and st.state in ("succeeded", "failed"):
                self.runbook.forget(st.id)

    async def _remove(self, key: tuple[str, int]) -> None:
        ins = self.instances.pop(key, None)
        if ins is None:
            return  # removed meanwhile (close() at shutdown does not wait for an apply)
        await ins.stop()
        await asyncio.to_thread(shutil.rmtree, ins.workdir, True)
        event(log, "app removed", app=key[0], instance=key[1])

    async def close(self) -> None:
        # all at once: each may take its whole grace period, and a shutdown must not take their sum
        await asyncio.gather(*(self._remove(key) for key in list(self.instances)))

    async def _prepare(self, a: na.AppAssignment, workdir: Path) -> None:
        """The artifact fetched (resumable, verified), unpacked once, and copied into the working dir."""
        art = a.artifact
        if not art.sha256:
            return
        async with self._fetching.setdefault(art.sha256, asyncio.Lock()):
            if not self.artifacts.has(art.sha256):  # again: it may have come while this one waited
                if self.fetch is None:
                    raise Unreachable("no session with the control plane to fetch the artifact from")
                await download(self.artifacts, self.fetch, art.sha256, art.size, what="artifact")
        self.artifacts.pin(art.sha256)
        try:
            tree = await asyncio.to_thread(self.artifacts.unpack, art.sha256, directory=art.directory, name=art.name)
            await asyncio.to_thread(self.artifacts.place, tree, workdir)
        finally:
            self.artifacts.release(art.sha256)

    async def _upload(self, run_id: str, path: Path) -> str:
        if self.upload is None:
            raise RuntimeError("no session with the control plane")
        return await self.upload(run_id, path)

    def status(self) -> list[na.AppStatus]:
        return [ins.status() for _, ins in sorted(self.instances.items())]

    # -- logs -------------------------------------------------------------------------------------
    def log_path(self, req: na.LogRequest) -> Path | None:
        ins = self.instances.get((req.app, req.instance))
        if ins is None:
            return None
        return ins.workdir / ("runs" / Path(f"{req.run}.log") if req.run else Path("logs") / "instance.log")

    async def serve_log(self, req: na.LogRequest, send) -> None:
        """Answer a LogRequest with LogData messages (`send` puts one on the session)."""
        if req.cancel:
            task = self._follows.pop(req.request_id, None)
            if task is not None:
                task.cancel()
            return
        path = self.log_path(req)
        if path is None or not path.is_file():
            what = f"run {req.run}" if req.run else f"instance {req.instance}"
            send(na.LogData(request_id=req.request_id, eof=True, error=f"no log of {what} of app {req.app} on this node"))
            return
        task = asyncio.create_task(self._send_log(req, path, send))
        if req.follow:
            self._follows[req.request_id] = task
            task.add_done_callback(lambda _: self._follows.pop(req.request_id, None))

    async def _send_log(self, req: na.LogRequest, path: Path, send) -> None:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - (req.tail_bytes or 64 * 1024)))
            while True:
                data = f.read(LOG_CHUNK)
                if data:
                    send(na.LogData(request_id=req.request_id, data=data))
                    continue
                if not req.follow or (req.app, req.instance) not in self.instances:
                    send(na.LogData(request_id=req.request_id, eof=True))
                    return
                await asyncio.sleep(FOLLOW_POLL_S)
