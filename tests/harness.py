"""Real processes for tests and benchmarks: control planes and node daemons.

Everything runs as a child process of the test (`python -m cli ...`),
listening on 127.0.0.1 or inside a network namespace, and is killed at the end.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stratum.grpc_util import bearer, secure_channel
from stratum.v1 import control_plane_pb2 as cp, control_plane_pb2_grpc as cp_grpc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def xdist_worker() -> tuple[int, int]:
    """(this worker's index, how many workers) under pytest-xdist; (0, 1) in a serial run."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not name.startswith("gw"):
        return 0, 1
    return int(name[2:]), max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


# Under xdist each worker hands out ports from its own slice of 10000-32767: below the kernel's
# ephemeral range (32768+), so no outgoing connection takes one, and disjoint, so two workers never
# pick the same number between one's check and its server's bind. Serially the kernel picks.
_PORT_RANGE = (10000, 32768)
_next_port: int | None = None


def _port_free(port: int) -> bool:
    with closing(socket.socket()) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port that nothing on 127.0.0.1 holds now (a process started next can listen on it)."""
    global _next_port
    index, count = xdist_worker()
    if count == 1:
        with closing(socket.socket()) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    span = (_PORT_RANGE[1] - _PORT_RANGE[0]) // count
    low = _PORT_RANGE[0] + index * span
    if _next_port is None:
        _next_port = low + random.randrange(span)  # two suites side by side seldom probe the same ports
    for _ in range(span):
        port, _next_port = _next_port, low + (_next_port + 1 - low) % span
        if _port_free(port):
            return port
    raise RuntimeError(f"no free port in {low}-{low + span - 1} (xdist worker {index} of {count})")


def nproc() -> int:
    """The CPUs this process may use, as coreutils' nproc counts them. nproc also honours
    OMP_NUM_THREADS and OMP_THREAD_LIMIT, which tests/conftest.py sets to 1 under pytest-xdist:
    those are left out, or it answers 1 on any machine."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_THREAD_LIMIT")}
    return int(subprocess.run(["nproc"], check=True, capture_output=True, text=True, env=env).stdout)


def wait_for(cond, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    """Poll `cond` until it returns a truthy value; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = cond()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - keep polling; report the last failure
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc!r})" if last_exc else ""))


def _netns_prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


class Process:
    """A child process whose output goes to a log file (read it when a test fails)."""

    def __init__(self, argv: list[str], log_path: str, env: dict | None = None, netns: str | None = None):
        self.argv, self.log_path, self.netns = argv, log_path, netns
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Process":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(_netns_prefix(self.netns) + self.argv, stdout=log, stderr=subprocess.STDOUT,
                                     env=self.env, cwd=REPO, start_new_session=True)
        log.close()
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.running:
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as in a crash."""
        self.signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`: long enough for a node to give its apps their grace
        period (a node SIGKILLed here leaves them running, by design, for its next start to reap)."""
        self.signal(signal.SIGTERM)
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


def stratum_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


class ControlPlane(Process):
    def __init__(self, workdir: str, store: str | None = None, heartbeat_interval: str = "1s", node_timeout: str = "3s",
                 host: str = "127.0.0.1", port: int | None = None, node_port: int | None = None, extra: list[str] | None = None,
                 env: dict | None = None, sizes: bool = False, ui: bool = False):
        """`sizes`: packaging measures replica sizes (vertical scaling), as by default outside tests;
        off, it saves about 4 s a model version in the tests that do not look at them. `ui`: serve the
        dashboard on a free port (`ui_url`); off by default (its default port, the API's + 2, may be
        another test's)."""
        self.data_dir = os.path.join(workdir, "control-plane")
        self.host = host
        self.port = port or free_port()
        self.node_port = node_port or free_port()
        while self.node_port == self.port:  # free_port can hand out the same number twice
            self.node_port = free_port()
        self.ui_port = 0
        if ui:
            self.ui_port = free_port()
            while self.ui_port in (self.port, self.node_port):
                self.ui_port = free_port()
        argv = stratum_argv("control-plane", "--data-dir", self.data_dir, "--listen", f"{host}:{self.port}",
                            "--node-listen", f"{host}:{self.node_port}", "--heartbeat-interval", heartbeat_interval,
                            "--node-timeout", node_timeout, "--ui-listen", f"{host}:{self.ui_port}" if ui else "off",
                            *(["--store", store] if store else []), *(extra or []))
        super().__init__(argv, os.path.join(workdir, "control-plane.log"),
                         env={"STRATUM_PROFILE_SIZES": "1" if sizes else "0", **(env or {})})

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"https://{self.host}:{self.ui_port}"

    @property
    def ca_pem_path(self) -> str:
        return os.path.join(self.data_dir, "ca.pem")

    def _read(self, name: str) -> str:
        with open(os.path.join(self.data_dir, name)) as f:
            return f.read().strip()

    @property
    def admin_token(self) -> str:
        return self._read("admin.token")

    @property
    def join_token(self) -> str:
        return self._read("join.token")

    def channel(self) -> grpc.Channel:
        with open(self.ca_pem_path, "rb") as f:
            return secure_channel(self.endpoint, f.read())

    def client(self) -> "AdminClient":
        return AdminClient(self.channel(), self.admin_token)

    def start(self, wait: bool = True) -> "ControlPlane":
        super().start()
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        def healthy():
            if not self.running:
                raise AssertionError(f"control plane exited:\n{self.log()[-3000:]}")
            if not os.path.exists(self.ca_pem_path):
                return False
            with self.channel() as ch:
                resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
                return resp.status == health_pb2.HealthCheckResponse.SERVING

        wait_for(healthy, timeout, what=f"control plane on {self.endpoint} to be healthy")


class AdminClient:
    """The ControlPlane stub with the admin token on every call."""

    def __init__(self, channel: grpc.Channel, token: str):
        self.channel, self.stub, self.md = channel, cp_grpc.ControlPlaneStub(channel), bearer(token)

    def __getattr__(self, method: str):
        rpc = getattr(self.stub, method)
        return lambda request=None, timeout=10: rpc(request if request is not None else _empty(method), metadata=self.md, timeout=timeout)

    def nodes(self, **filters) -> dict:
        """Nodes by name."""
        return {n.name: n for n in self.ListNodes(cp.ListNodesRequest(**filters)).nodes}

    def close(self) -> None:
        self.channel.close()


def _empty(method: str):
    return getattr(cp, f"{method}Request")()


class NodeDaemon(Process):
    def __init__(self, workdir: str, name: str, server: str, join_token: str | None, tier: str = "", labels: dict | None = None,
                 netns: str | None = None, extra: list[str] | None = None, env: dict | None = None):
        self.name = name
        self.data_dir = os.path.join(workdir, f"node-{name}")
        argv = stratum_argv("node", "--server", server, "--name", name, "--data-dir", self.data_dir,
                            *(["--join-token", join_token] if join_token else []), *(["--tier", tier] if tier else []),
                            *[a for k, v in (labels or {}).items() for a in ("--label", f"{k}={v}")], *(extra or []))
        super().__init__(argv, os.path.join(workdir, f"node-{name}.log"), env=env, netns=netns)
