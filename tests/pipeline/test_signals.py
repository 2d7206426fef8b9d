"""The long-running apps stop on SIGTERM however the signals come: a burst of them (the node daemon
signals the group and the process; an operator presses Ctrl-C twice) must not leave an app hung.
Setting a threading.Event from the handler did: a second signal landing inside Event.set blocked
the main thread on the lock the first one held, and only SIGKILL ended the process."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.harness import wait_for
from tests.pipeline.conftest import App, start_broker


def burst(app: App, seconds: float = 3.0) -> None:
    """SIGTERM after SIGTERM for a while: some land inside the handling of the one before."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and app.proc.poll() is None:
        try:
            os.kill(app.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return


def test_the_handler_takes_no_lock_the_interrupted_code_may_hold():
    """Deterministically, what a burst hits by chance: the handler runs while the main thread is
    inside the stop event's own lock (a signal during Event.set). It must return, and the event be
    set once the lock is free."""
    import threading

    import common
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        common.stop_on_signals(stop)
        handler = signal.getsignal(signal.SIGTERM)
        returned = threading.Event()

        def interrupted():
            with stop._cond:  # as inside Event.set / Event.wait
                handler(signal.SIGTERM, None)
                handler(signal.SIGINT, None)
                returned.set()

        t = threading.Thread(target=interrupted, daemon=True)
        t.start()
        assert returned.wait(5), "the handler blocked on the lock its own thread holds"
        assert stop.wait(5)
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


def test_a_burst_of_sigterm_stops_the_sensor(apps):
    broker, port = start_broker(apps)
    sensor = apps.start("sensor", "sensor", STRATUM_BROKER_URL=f"mqtt://127.0.0.1:{port}", INTERSECTIONS="i-01", RATE=200)
    wait_for(lambda: sensor.log_events("connected") or not sensor.alive(), 20, what="the sensor connected")
    time.sleep(0.3)  # publishing, its main thread in and out of the stop event's wait
    burst(sensor)
    # 0, or killed by a SIGTERM that came after Python restored the default handler on its way out
    assert sensor.proc.wait(20) in (0, -signal.SIGTERM), sensor.log_tail()
    assert sensor.log_events("stats"), "it stopped publishing, drained and logged its counts"


def test_a_burst_of_sigterm_stops_the_dashboard(apps, tmp_path):
    from tests.harness import free_port
    from tests.pipeline.conftest import http_get
    port = free_port()
    dash = apps.start("dashboard", "dashboard", HISTORY_STORE=f"sqlite:///{tmp_path / 'h.db'}", STRATUM_PORT_HTTP=port)
    wait_for(lambda: http_get(port, "/healthz")[0] in (200, 503) or not dash.alive(), 20, what="the dashboard up")
    burst(dash)
    assert dash.proc.wait(20) in (0, -signal.SIGTERM), dash.log_tail()
