"""App start time: CreateApp of a service app whose artifact is already in the node's cache, until
the app is ready (its health check passed, as GetApp reports it), against the same command started
by hand until the same health check answers.

The app is the stream processor (http check on /healthz, which answers 200 once it has subscribed
to the broker): the Stratum one connects to the Stratum arm's broker, the one by hand to the hand
arm's broker. Each has its own store file and a session that expires at once (nothing queues for
it on the broker after it is gone). Both listen on a fixed port the bench picked, so the bench
also sees when the process itself first answers /healthz in the Stratum arm: that splits Stratum's
time into "until the process is healthy" and "until the API says ready".
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc

from bench.pipeline.arms import HEALTH_HTTP, HandProcess, HandArm, StratumArm, _tcp_open
from stratum.runtime.runner import http_ok
from stratum.v1 import apps_pb2 as a
from tests.harness import free_port, wait_for

POLL_S = 0.01  # both arms are watched this often


def _probe_env(db: Path) -> dict[str, str]:
    return {"HISTORY_STORE": f"sqlite:///{db}", "SESSION_EXPIRY_S": "1", "WINDOW_S": "1"}


class _FirstHealthy(threading.Thread):
    """Polls http://127.0.0.1:<port>/healthz until it answers 200; .at is that monotonic time."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.at, self.stop = port, None, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if http_ok("127.0.0.1", self.port, "/healthz", timeout=1):
                self.at = time.monotonic()
                return
            time.sleep(POLL_S)


def stratum_start(arm: StratumArm, port: int, db: Path) -> dict:
    spec = a.AppSpec(name="probe", kind="service", artifact=arm.artifact, command="python3", args=["processor.py"],
                     ports={"http": port}, health=HEALTH_HTTP, connects_to=["broker", "congestion"],
                     env=_probe_env(db))
    watcher = _FirstHealthy(port)
    t0 = time.monotonic()
    watcher.start()
    arm.c.CreateApp(spec)
    created = time.monotonic()
    while True:
        app = arm.c.GetApp(a.GetAppRequest(name="probe"))
        if app.state == "ready":
            break
        if app.state == "failed":
            raise RuntimeError(f"probe app failed: {app.message}")
        if time.monotonic() - t0 > 120:
            raise RuntimeError(f"probe app not ready after 120 s: {app.message}")
        time.sleep(POLL_S)
    ready = time.monotonic()
    watcher.join(5)
    watcher.stop.set()
    out = {"ready_s": ready - t0, "create_rpc_s": created - t0,
           "process_healthy_s": (watcher.at - t0) if watcher.at else None}
    arm.c.DeleteApp(a.DeleteAppRequest(name="probe"))

    def gone():
        try:
            arm.c.GetApp(a.GetAppRequest(name="probe"))
        except grpc.RpcError as e:
            return e.code() == grpc.StatusCode.NOT_FOUND
    wait_for(gone, 60, interval=0.05, what="probe app deleted")
    wait_for(lambda: not _tcp_open(port), 30, what=f"port {port} free again")
    return out


def hand_start(arm: HandArm, port: int, db: Path) -> dict:
    proc = HandProcess(arm.root, "probe", "processor", STRATUM_PORT_HTTP=port, STRATUM_BROKER_URL=arm.broker_url,
                       STRATUM_CONGESTION_URL=f"http://127.0.0.1:{arm.model_port}", **_probe_env(db))
    t0 = time.monotonic()
    proc.start()
    while not http_ok("127.0.0.1", port, "/healthz", timeout=1):
        if proc.proc.poll() is not None:
            raise RuntimeError(f"the probe by hand exited with {proc.proc.returncode}")
        if time.monotonic() - t0 > 120:
            raise RuntimeError("the probe by hand is not healthy after 120 s")
        time.sleep(POLL_S)
    out = {"ready_s": time.monotonic() - t0}
    proc.stop()
    wait_for(lambda: not _tcp_open(port), 30, what=f"port {port} free again")
    return out


def measure(stratum: StratumArm, hand: HandArm, repetitions: int, say) -> dict:
    """One unmeasured start of each (the store's schema, cold caches), then `repetitions` pairs in
    alternating order."""
    port = free_port()
    sdb, hdb = stratum.root / "probe-stratum.db", hand.root / "probe-hand.db"
    stratum_start(stratum, port, sdb)
    hand_start(hand, port, hdb)
    runs = {"stratum": [], "hand": []}
    for i in range(repetitions):
        order = ("stratum", "hand") if i % 2 == 0 else ("hand", "stratum")
        for which in order:
            r = stratum_start(stratum, port, sdb) if which == "stratum" else hand_start(hand, port, hdb)
            runs[which].append(r)
        s, h = runs["stratum"][-1], runs["hand"][-1]
        say(f"start {i + 1}/{repetitions}: by hand {h['ready_s']:.3f}s, Stratum ready {s['ready_s']:.3f}s "
            f"(process healthy at {s['process_healthy_s'] or float('nan'):.3f}s)")
    return runs
