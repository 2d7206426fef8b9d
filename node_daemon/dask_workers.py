"""Run the dask workers the control plane asks for (Assignments.dask_workers): one supervised
program per training in progress (`python -m control_plane.ml.dask_cluster worker`), with one
single-threaded worker process per core this node may use and resources cpu=1 and its share of
the memory each, from the node's capability probes.

The program runs in a session of its own under <data dir>/dask/<training>/ (its log, its TLS files
0600, dask's scratch space), restarted with backoff should it end while still assigned (its
scheduler restarted, say), stopped with SIGTERM then SIGKILL when the training leaves the
assignments, and its directory removed (the log is kept as dask/last-worker.log). It dies with the
daemon (the worker program asks Linux for that), so a node that is lost takes its workers with it
and the scheduler runs their folds elsewhere; a restarted daemon reaps any that a kill -9 left.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from stratum import pki
from stratum.logs import event
from stratum.runtime import process
from stratum.v1 import node_agent_pb2 as na, types_pb2

log = logging.getLogger("stratum.node.dask")

BACKOFF_S, BACKOFF_CAP_S = 1.0, 30.0
STOP_GRACE_S = 10.0


def resources() -> tuple[int, int]:
    """(worker processes, memory MiB) from the same probes the node's capabilities come from."""
    from node_daemon.capabilities import cpu, memory

    caps = types_pb2.Capabilities()
    cpu.CpuProbe().probe(caps, None)
    memory.MemoryProbe().probe(caps, None)
    return max(1, caps.cpu_cores), max(1, caps.memory_mb)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class _Running:
    want: na.DaskWorker
    task: asyncio.Task
    proc: object = None  # subprocess.Popen while it runs


class DaskWorkers:
    def __init__(self, data_dir: str, name: str, ca_pem: bytes, server_host: Callable[[], str] = lambda: "127.0.0.1"):
        self.dir = Path(data_dir) / "dask"
        self.name, self.ca_pem = name, ca_pem
        self.server_host = server_host  # the host of the control plane this node's session is with
        self.running: dict[str, _Running] = {}  # training -> its worker program
        self.generation = 0
        self._lock = asyncio.Lock()  # Assignments apply one at a time, in arrival order
        self.dir.mkdir(parents=True, exist_ok=True)
        reaped = process.reap(self.dir)  # what a daemon killed -9 left: assignments say what runs now
        if reaped:
            event(log, "stopped dask workers left by an earlier run", pids=reaped)
        for stale in self.dir.iterdir():
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)

    async def apply(self, assignments: na.Assignments) -> None:
        async with self._lock:
            if assignments.generation < self.generation:
                return  # an older message overtaken by a newer one
            self.generation = assignments.generation
            want = {w.training: w for w in assignments.dask_workers}
            for training in [t for t, r in self.running.items() if want.get(t) != r.want]:
                await self._stop(training)
            for training, w in want.items():
                if training not in self.running:
                    r = self.running[training] = _Running(w, None)  # type: ignore[arg-type]
                    r.task = asyncio.create_task(self._supervise(r))

    async def close(self) -> None:
        async with self._lock:
            for training in list(self.running):
                await self._stop(training)

    def _argv(self, w: na.DaskWorker, home: Path) -> tuple[list[str], dict]:
        host = w.scheduler_host or self.server_host()
        scheduler = f"tls://{f'[{host}]' if ':' in host else host}:{w.scheduler_port}"
        nworkers, memory_mb = resources()
        argv = [sys.executable, "-m", "control_plane.ml.dask_cluster", "worker", "--scheduler", scheduler,
                "--name", self.name, "--nworkers", str(nworkers), "--memory-mb", str(memory_mb),
                "--tls-dir", str(home / "tls"), "--local-directory", str(home / "scratch")]
        return argv, {"scheduler": scheduler, "workers": nworkers, "memory_mb": memory_mb}

    async def _supervise(self, r: _Running) -> None:
        w = r.want
        home = self.dir / w.training
        (home / "tls").mkdir(parents=True, exist_ok=True, mode=0o700)
        (home / "scratch").mkdir(exist_ok=True)
        for name, data in (("ca.pem", self.ca_pem), ("worker.pem", w.tls_cert_pem), ("worker.key", w.tls_key_pem)):
            pki.write_private(str(home / "tls" / name), data)
        delay = BACKOFF_S
        while True:
            argv, shown = self._argv(w, home)
            try:
                # on the loop, not in a thread: a cancellation can then never lose a started process
                r.proc = process.spawn(argv, env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=home,
                                       log_path=home / "worker.log", pid_path=self.dir / f"{w.training}.pid")
            except OSError as e:
                event(log, "dask worker did not start", level=logging.WARNING, training=w.training, error=str(e),
                      retry_in_s=delay)
            else:
                event(log, "dask worker started", training=w.training, pid=r.proc.pid, **shown)
                rc = await asyncio.to_thread(r.proc.wait)
                event(log, "dask worker ended; starting it again", level=logging.WARNING, training=w.training,
                      exit_code=rc, retry_in_s=delay, log_tail=_tail(home / "worker.log"))
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_CAP_S)

    async def _stop(self, training: str) -> None:
        r = self.running.pop(training)
        r.task.cancel()
        await asyncio.gather(r.task, return_exceptions=True)
        if r.proc is not None and r.proc.poll() is None:
            await asyncio.to_thread(process.stop, r.proc, grace=STOP_GRACE_S)
        (self.dir / f"{training}.pid").unlink(missing_ok=True)
        try:  # the last training's worker log stays for a look; the rest goes, its key too
            os.replace(self.dir / training / "worker.log", self.dir / "last-worker.log")
        except OSError:
            pass
        await asyncio.to_thread(shutil.rmtree, self.dir / training, True)
        event(log, "dask worker stopped", training=training)
