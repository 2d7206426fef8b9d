"""The demo's stop.sh on its own, with stand-in processes (no demo started): it stops what is the
demo's and kills what is left, naming it, but never itself or the shell it is run from, even when
that shell works in the demo's directory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import types

import psutil

from cli import demo


def detached(argv: list[str], cwd: str) -> int:
    """Start argv in a session of its own whose parent exits at once (as the demo's daemons outlive
    `stratum demo --keep`); its pid."""
    out = subprocess.run(["bash", "-c", 'setsid "$@" >/dev/null 2>&1 < /dev/null & echo $!', "_", *argv],
                         cwd=cwd, capture_output=True, text=True, check=True)
    return int(out.stdout)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_stop_sh_stops_the_demo_names_what_it_kills_and_spares_the_calling_shell(tmp_path, monkeypatch):
    work = tmp_path / "demo"
    (work / "node").mkdir(parents=True)
    sleeper = [sys.executable, "-c", "import sys, time; time.sleep(300)"]
    plane = detached([*sleeper, f"{work}/control-plane"], str(work))
    node = detached([*sleeper, f"{work}/node"], str(work / "node"))
    # a replica its node left behind that ignores SIGTERM: only the final sweep finds and kills it
    left = detached(["bash", "-c", "trap '' TERM; while :; do sleep 1; done"], str(work / "node"))
    try:
        monkeypatch.setattr(demo, "STOP_GRACE_S", 2)
        procs = [types.SimpleNamespace(pid=p) for p in (plane, node)]
        _, stop_sh = demo.write_helpers(types.SimpleNamespace(workdir=str(work), procs=procs, logs=str(work)),
                                        {"STRATUM_ENDPOINT": "127.0.0.1:1", "STRATUM_CA_CERT": "ca.pem",
                                         "TF_CLI_CONFIG_FILE": "tf.rc"}, str(work))
        assert os.path.dirname(stop_sh) == str(work)
        # the user's shell sits in the demo's directory and runs ./stop.sh from there
        r = subprocess.run(["bash", "-c", "./stop.sh; echo rc=$?; echo the calling shell lives on"], cwd=work,
                           capture_output=True, text=True, timeout=120)
        assert "rc=1" in r.stdout and "the calling shell lives on" in r.stdout, (r.stdout, r.stderr)
        assert "still running after 2 s, killed:" in r.stderr and f"{left} bash -c trap" in r.stderr, r.stderr
        assert str(plane) not in r.stderr and str(node) not in r.stderr  # those stopped on SIGTERM
        deadline = time.monotonic() + 10
        while any(alive(p) for p in (plane, node, left)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(p) for p in (plane, node, left))
    finally:
        for p in (plane, node, left):
            if alive(p):
                psutil.Process(p).kill()
