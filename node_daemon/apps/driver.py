"""The exec driver (as Nomad's): how one app process is started and stopped on this node.

Each instance has a working directory of its own under the node's data dir (<data>/apps/<app>-<i>/)
holding a copy of its artifact, its logs (logs/instance.log; runs/<n>.log for batch runs) and its
outputs. The process gets only the declared environment plus Stratum's own variables and a PATH,
runs in its own session and, when the node has cgroups, in a group of its own with the
requirements' cpu and memory as limits. Stopping is SIGTERM, then SIGKILL after the kill timeout,
to every process the program started (stratum/runtime/process.py). Pid files under <data>/apps/.pids
let a node daemon that was killed find and stop what it left (`reap`).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from pathlib import Path

from node_daemon.capabilities.binaries import search_path
from stratum.runtime import process
from stratum.v1 import node_agent_pb2 as na

REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class DriverError(RuntimeError):
    """The instance cannot be started as assigned (no such program, port taken, ...)."""


def interpolate(arg: str, env: dict[str, str]) -> str:
    """${NAME} -> env[NAME] (the control plane checked every name exists)."""
    return REF.sub(lambda m: env.get(m.group(1), m.group(0)), arg)


def key_of(app: str, instance: int) -> str:
    """The instance's pid file stem and cgroup name (distinct from replicas' ids, which have no dot)."""
    return f"app.{app}.{instance}"


class ExecDriver:
    def __init__(self, root: str | os.PathLike, *, cgroups=None, serve_host: str = "127.0.0.1",
                 advertise_host: str | None = None, node_name: str = ""):
        self.root = Path(root).resolve()
        self.pid_dir = self.root / ".pids"
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.cgroups = cgroups
        self.serve_host = serve_host
        self.advertise_host = advertise_host or serve_host
        # health checks and port probes connect here: the address apps bind to, loopback for "any"
        self.local_host = "127.0.0.1" if serve_host in ("0.0.0.0", "::", "") else serve_host
        self.node_name = node_name

    def workdir(self, app: str, instance: int) -> Path:
        return self.root / f"{app}-{instance}"

    def address(self, port: int) -> str:
        host = self.advertise_host
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    # -- ports ----------------------------------------------------------------------------------
    def pick_ports(self, wanted: dict[str, int], held: dict[str, int]) -> dict[str, int]:
        """A port for each name: the fixed one, the one this instance already had, or a free one."""
        out = {}
        for name, port in sorted(wanted.items()):
            if port:
                out[name] = port
            elif held.get(name):
                out[name] = held[name]
            else:
                with socket.socket(socket.AF_INET6 if ":" in self.local_host else socket.AF_INET) as s:
                    s.bind((self.serve_host if self.serve_host not in ("", "::") else "0.0.0.0", 0))
                    out[name] = s.getsockname()[1]
        return out

    def port_free(self, port: int) -> bool:
        return process_port_free(self.serve_host, port)

    # -- the process ----------------------------------------------------------------------------
    def environment(self, a: na.AppAssignment, ports: dict[str, int], workdir: Path, *, run: na.RunOrder | None = None,
                    output: Path | None = None) -> dict[str, str]:
        """Only what is declared, and Stratum's own variables: nothing leaks in from the daemon's
        environment but PATH (with the daemon's Python first, so `python3` is the one it runs on)."""
        env = {"PATH": search_path(), "HOME": str(workdir), "LANG": "C.UTF-8", "TMPDIR": str(workdir / "tmp"),
               "STRATUM_APP": a.app, "STRATUM_INSTANCE": str(a.instance), "STRATUM_NODE": self.node_name,
               "STRATUM_HOST": self.serve_host or "0.0.0.0"}
        env.update({f"STRATUM_PORT_{name.upper()}": str(p) for name, p in ports.items()})
        if run is not None:
            env["STRATUM_RUN"] = str(run.number)
            if output is not None:
                env["STRATUM_OUTPUT"] = str(output)
        env.update(a.env)
        return env

    def argv(self, a: na.AppAssignment, env: dict[str, str], workdir: Path) -> list[str]:
        """The command, found in the working directory (the artifact) or on PATH, then its arguments."""
        args = [interpolate(x, env) for x in a.args]
        command = a.command
        if not command:  # the artifact file itself
            name = a.artifact.name
            if name.endswith(".py"):
                return [sys.executable, str(workdir / name), *args]
            if name.endswith(".sh"):
                return ["/bin/sh", str(workdir / name), *args]
            path = workdir / name
            path.chmod(path.stat().st_mode | 0o111)
            return [str(path), *args]
        if "/" in command:
            path = Path(command) if os.path.isabs(command) else workdir / command
            if not path.exists():
                raise DriverError(f"command {command!r} is not in the app's files")
            return [str(path), *args]
        if (workdir / command).is_file() and os.access(workdir / command, os.X_OK):
            return [str(workdir / command), *args]
        found = shutil.which(command, path=env["PATH"])
        if found is None:
            raise DriverError(f"command {command!r} is not on this node's PATH (see requirements.binaries)")
        return [found, *args]

    def start(self, key: str, argv: list[str], env: dict, workdir: Path, log_path: Path, limits: tuple | None):
        (workdir / "tmp").mkdir(parents=True, exist_ok=True)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return process.spawn(argv, env=env, cwd=workdir, log_path=log_path, pid_path=self.pid_dir / f"{key}.pid",
                                 cgroups=self.cgroups, cgroup=key, limits=limits)
        except OSError as e:
            raise DriverError(f"cannot start {argv[0]}: {e.strerror or e}") from None

    def stop(self, key: str, proc, grace: float) -> int | None:
        code = process.stop(proc, grace=grace, cgroups=self.cgroups, cgroup=key)
        (self.pid_dir / f"{key}.pid").unlink(missing_ok=True)
        return code

    def reap(self) -> list[int]:
        """What an earlier run of this daemon left running: stopped, to start afresh from assignments."""
        return process.reap(self.pid_dir, cgroups=self.cgroups)


def process_port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host if host not in ("", "::") else "0.0.0.0", port))
        except OSError:
            return False
    return True
