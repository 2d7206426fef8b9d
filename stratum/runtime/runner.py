"""Replicas: real `bentoml serve` processes on free local ports.

    runner = ReplicaRunner(bentoml_home, run_dir)
    replica = runner.start("congestion:v3", workers=1)      # blocks until GET /healthz answers 200
    replica.url, replica.port, replica.load_time_s, replica.rss_bytes()
    runner.stop(replica)                                     # SIGTERM to its process group, then SIGKILL
    runner.stop_all()                                        # destroy: every process gone, every port freed

Each replica is its own process group (`start_new_session`), so stopping it reaches the
BentoML arbiter and every worker it forked.  Its output goes to `<run_dir>/<id>.log` (never a
pipe, which would fill and stall the server) and its pid to `<run_dir>/<id>.pid`, so a node
daemon that restarts can find and end replicas a previous run left (`reap_stale`).

Ports come from a PortAllocator: a port is picked by binding port 0, then held until the
replica using it stops; a replica that loses the race for its port (exits at start-up while
another process took it) is retried on a new port.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from stratum.runtime import process

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 90.0
STOP_GRACE_S = 10.0
HEALTH_PATH = "/healthz"


class ReplicaError(RuntimeError):
    """A replica did not become ready (exited, or timed out); the message carries its log tail."""


def bentoml_cli() -> list[str]:
    exe = Path(sys.executable).with_name("bentoml")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bentoml"]


def bentoml_env(bentoml_home: str | os.PathLike, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["BENTOML_HOME"] = str(Path(bentoml_home).resolve())
    env["BENTOML_DO_NOT_TRACK"] = "True"
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in (extra or {}).items()})
    return env


class PortAllocator:
    """Free TCP ports on one host, held from allocation until release."""

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self._held: set[int] = set()
        self._lock = threading.Lock()

    def allocate(self) -> int:
        with self._lock:
            for _ in range(100):
                with socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET) as s:
                    s.bind((self.host, 0))
                    port = s.getsockname()[1]
                if port not in self._held:
                    self._held.add(port)
                    return port
        raise ReplicaError(f"no free port on {self.host}")

    def release(self, port: int) -> None:
        with self._lock:
            self._held.discard(port)

    @property
    def held(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self._held)


def port_is_free(host: str, port: int) -> bool:
    """True if a server could listen on the port now (bound like servers bind: SO_REUSEADDR, so
    connections of a stopped server lingering in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, bytes (0 if it is gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def http_ok(host: str, port: int, path: str = HEALTH_PATH, timeout: float = 2.0) -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


_ids = itertools.count(1)


@dataclass
class Replica:
    id: str
    bento: str  # tag (name:version) in the runner's BENTOML_HOME, or a bento directory
    host: str
    port: int
    workers: int
    process: subprocess.Popen
    log_path: Path
    started_at: float  # time.monotonic() at spawn
    ready_at: float | None = None
    stopped: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def load_time_s(self) -> float | None:
        return None if self.ready_at is None else self.ready_at - self.started_at

    def alive(self) -> bool:
        return self.process.poll() is None

    def healthy(self, timeout: float = 2.0) -> bool:
        return self.alive() and http_ok(self.host, self.port, HEALTH_PATH, timeout)

    def rss_bytes(self) -> int:
        return tree_rss(self.pid) if self.alive() else 0

    def pids(self) -> list[int]:
        try:
            root = psutil.Process(self.pid)
            return [root.pid, *(c.pid for c in root.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def describe(self) -> dict:
        return {"id": self.id, "bento": self.bento, "url": self.url, "port": self.port, "pid": self.pid,
                "workers": self.workers, "load_time_s": self.load_time_s, "rss_bytes": self.rss_bytes()}


class ReplicaRunner:
    def __init__(self, bentoml_home: str | os.PathLike, run_dir: str | os.PathLike, *, host: str = "127.0.0.1",
                 ports: PortAllocator | None = None, cgroups=None):
        self.bentoml_home = Path(bentoml_home).resolve()
        self.run_dir = Path(run_dir).resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.ports = ports or PortAllocator(host)
        self.cgroups = cgroups  # stratum/runtime/cgroups.py: per-replica cpu and memory limits; None: none
        self.replicas: dict[str, Replica] = {}
        self._lock = threading.Lock()

    # -- start --------------------------------------------------------------------------------
    def spawn(self, bento: str, *, workers: int = 1, env: dict | None = None, replica_id: str | None = None,
              limits: tuple | None = None) -> Replica:
        """Launch `bentoml serve` without waiting for it (see wait_ready). `limits` (cpu cores,
        memory MiB), either may be None: with cgroups, the replica runs in a group of its own with them."""
        rid = replica_id or f"r{os.getpid()}-{next(_ids)}"
        port = self.ports.allocate()
        log_path = self.run_dir / f"{rid}.log"
        argv = [*bentoml_cli(), "serve", bento, "--port", str(port), "--host", self.host]
        extra = {"STRATUM_WORKERS": workers, **(env or {})}
        try:
            proc = process.spawn(argv, env=bentoml_env(self.bentoml_home, extra), cwd=self.run_dir, log_path=log_path,
                                 pid_path=self.run_dir / f"{rid}.pid", cgroups=self.cgroups, cgroup=rid, limits=limits)
        except BaseException:
            self.ports.release(port)
            raise
        replica = Replica(rid, bento, self.host, port, workers, proc, log_path, time.monotonic())
        if self.cgroups is not None:
            replica.extra["cgroup"] = rid
        with self._lock:
            self.replicas[rid] = replica
        return replica

    def set_limits(self, replica: Replica, cpu: float | None, memory_mb: int | None) -> None:
        """Change a running replica's cpu quota and memory limit (vertical scaling, no restart)."""
        if self.cgroups is None or "cgroup" not in replica.extra:
            raise ValueError(f"replica {replica.id} runs without a cgroup")
        self.cgroups.set(replica.extra["cgroup"], cpu, memory_mb)

    def wait_ready(self, replica: Replica, timeout: float = READY_TIMEOUT_S, interval: float = 0.05) -> Replica:
        deadline = time.monotonic() + timeout
        while True:
            if not replica.alive():
                code = replica.process.returncode
                self._forget(replica)
                raise ReplicaError(f"replica {replica.id} ({replica.bento}) exited with code {code} before it was "
                                   f"ready; its log ({replica.log_path}) ends:\n{replica.log_tail()}")
            if http_ok(replica.host, replica.port, HEALTH_PATH, timeout=max(0.1, min(2.0, deadline - time.monotonic()))):
                replica.ready_at = time.monotonic()
                return replica
            if time.monotonic() >= deadline:
                tail = replica.log_tail()
                self.stop(replica)
                raise ReplicaError(f"replica {replica.id} ({replica.bento}) was not healthy on {replica.url}{HEALTH_PATH} "
                                   f"after {timeout:.0f}s; its log ends:\n{tail}")
            time.sleep(interval)

    def start(self, bento: str, *, workers: int = 1, env: dict | None = None, ready_timeout: float = READY_TIMEOUT_S,
              replica_id: str | None = None, attempts: int = 3, limits: tuple | None = None) -> Replica:
        """Spawn a replica and wait until it answers GET /healthz; retried on a new port if it loses its port."""
        for attempt in range(1, attempts + 1):
            replica = self.spawn(bento, workers=workers, env=env, replica_id=replica_id, limits=limits)
            try:
                return self.wait_ready(replica, ready_timeout)
            except ReplicaError as exc:
                lost_port = "address already in use" in str(exc).lower() or "errno 98" in str(exc).lower()
                if not lost_port or attempt == attempts:
                    raise
                log.warning("replica %s lost port %d to another process; retrying", replica.id, replica.port)
        raise AssertionError("unreachable")

    async def astart(self, bento: str, **kwargs) -> Replica:
        return await asyncio.to_thread(self.start, bento, **kwargs)

    # -- stop ---------------------------------------------------------------------------------
    def stop(self, replica: Replica, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM the replica's process group (BentoML shuts down gracefully), SIGKILL what is left after
        `grace` seconds, then release its port."""
        if replica.stopped:
            return
        process.stop(replica.process, grace=grace, cgroups=self.cgroups if "cgroup" in replica.extra else None,
                     cgroup=replica.extra.get("cgroup"))
        self._forget(replica)

    async def astop(self, replica: Replica, grace: float = STOP_GRACE_S) -> None:
        await asyncio.to_thread(self.stop, replica, grace)

    def stop_all(self, grace: float = STOP_GRACE_S) -> None:
        with self._lock:
            replicas = list(self.replicas.values())
        threads = [threading.Thread(target=self.stop, args=(r, grace)) for r in replicas]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _forget(self, replica: Replica) -> None:
        replica.stopped = True
        if replica.process.poll() is None:
            _signal_group(replica.pid, signal.SIGKILL)
            try:
                replica.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.ports.release(replica.port)
        with self._lock:
            self.replicas.pop(replica.id, None)
        try:
            (self.run_dir / f"{replica.id}.pid").unlink()
        except FileNotFoundError:
            pass

    def reap_stale(self) -> list[int]:
        """Kill the replicas (process groups, cgroups) left by an earlier run of this node: the pid files
        in run_dir whose process still exists with the same start time (so a reused pid is never hit)."""
        return process.reap(self.run_dir, keep=set(self.replicas), cgroups=self.cgroups)


_signal_group = process.signal_group
