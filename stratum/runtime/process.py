"""A supervised process: its own session (process group), output to a log file, a pid file that
lets a restarted daemon find it, and optionally a cgroup with cpu and memory limits. Shared by
the replica runner (runner.py) and the node's exec driver for apps (node_daemon/apps/driver.py).

    proc = spawn(argv, env=env, cwd=workdir, log_path=log, pid_path=pidfile, cgroups=cg, cgroup="app-0",
                 limits=(0.5, 256))
    stop(proc, grace=10, cgroups=cg, cgroup="app-0")    # SIGTERM, then SIGKILL to whatever is left
    reap(pid_dir)                                      # what an earlier, killed daemon left running

Stopping reaches every process the program started: its process group, its descendants (found
before the group is signalled, since they may leave the group), and with a cgroup every process
in it, including daemons that double-forked away.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from pathlib import Path

import psutil

log = logging.getLogger(__name__)


def spawn(argv: list[str], *, env: dict, cwd: str | os.PathLike, log_path: str | os.PathLike,
          pid_path: str | os.PathLike, cgroups=None, cgroup: str | None = None, limits: tuple | None = None
          ) -> subprocess.Popen:
    """Start argv in a session of its own, stdout and stderr appended to log_path (never a pipe,
    which would fill and stall the program); write its pid and start time to pid_path; with
    `cgroups`, move it into group `cgroup` (limits: cpu cores, memory MiB; either may be None)."""
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=cwd)
    try:
        created = psutil.Process(proc.pid).create_time()
    except psutil.NoSuchProcess:
        created = 0.0
    Path(pid_path).write_text(f"{proc.pid} {created}\n")
    if cgroups is not None and cgroup:
        # right after exec, before the program forks (children inherit the group); a group without
        # limits still lets limits be set later, live, and finds every process when it stops
        try:
            cgroups.create(cgroup)
            cgroups.add(cgroup, proc.pid)
            cgroups.set(cgroup, *(limits or (None, None)))
        except BaseException:
            stop(proc, grace=0, cgroups=None)
            Path(pid_path).unlink(missing_ok=True)
            raise
    return proc


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send `sig` to this process when its parent exits (prctl PR_SET_PDEATHSIG), and
    exit now if the parent is already gone. For helpers whose work means nothing without their
    parent: a control plane's training job and its worker pool, killed with -9, would otherwise go
    on as orphans, holding memory and CPU for a result nobody reads (the restarted control plane
    trains again). A no-op where prctl is missing."""
    import ctypes

    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(sig), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the prctl took effect
        os.kill(os.getpid(), sig)


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _procs(pids) -> list[psutil.Process]:
    out = []
    for pid in pids:
        try:
            out.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    return out


def _kill_all(procs: list[psutil.Process]) -> None:
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=5.0)


def stop(proc: subprocess.Popen, *, grace: float, cgroups=None, cgroup: str | None = None) -> int | None:
    """SIGTERM the process group (and the cgroup's members), SIGKILL what is left after `grace`
    seconds, then remove the cgroup. Returns the exit code of the main process."""
    try:
        root = psutil.Process(proc.pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    in_group = _procs(_cgroup_pids(cgroups, cgroup))
    pgid = proc.pid
    signal_group(pgid, signal.SIGTERM)
    for p in in_group:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        signal_group(pgid, signal.SIGKILL)
        proc.wait(timeout=10)
    # descendants that outlived the main process (or left its group), and the group's members
    _, alive = psutil.wait_procs(family + in_group, timeout=min(grace, 5.0))
    _kill_all(alive)
    _kill_all(_procs(_cgroup_pids(cgroups, cgroup)))
    signal_group(pgid, signal.SIGKILL)  # anything still in the process group
    if cgroups is not None and cgroup:
        try:
            cgroups.remove(cgroup)
        except Exception as e:  # noqa: BLE001 - an empty group left behind is harmless; say so
            log.warning("could not remove cgroup %s: %s", cgroup, e)
    return proc.returncode


def _cgroup_pids(cgroups, cgroup: str | None) -> list[int]:
    if cgroups is None or not cgroup:
        return []
    try:
        return [p for p in cgroups.pids(cgroup) if p != os.getpid()]
    except OSError:
        return []


def reap(pid_dir: str | os.PathLike, keep: set[str] = frozenset(), cgroups=None) -> list[int]:
    """Kill what pid files in pid_dir name (their whole process group, and with `cgroups` the group
    named like the file) when the process still exists with the same start time, so a reused pid
    is never hit; remove the files. `keep`: file stems still in use."""
    killed = []
    for pidfile in Path(pid_dir).glob("*.pid"):
        if pidfile.stem in keep:
            continue
        try:
            pid_s, _, created_s = pidfile.read_text().strip().partition(" ")
            pid = int(pid_s)
            proc = psutil.Process(pid)
            if abs(proc.create_time() - float(created_s or 0)) < 1.0:
                signal_group(pid, signal.SIGKILL)
                killed.append(pid)
        except (ValueError, psutil.NoSuchProcess, psutil.AccessDenied, OSError):
            pass
        stray = _procs(_cgroup_pids(cgroups, pidfile.stem))
        _kill_all(stray)
        killed += [p.pid for p in stray]
        if cgroups is not None:
            try:
                cgroups.remove(pidfile.stem, timeout=2.0)
            except Exception:  # noqa: BLE001 - no group of that name, or one still emptying
                pass
        pidfile.unlink(missing_ok=True)
    return killed
