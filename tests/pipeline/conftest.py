"""Fixtures for the smart-traffic apps: real processes run the way Stratum's exec driver runs them
(a working directory holding a copy of apps/, the declared environment and nothing else), a real
Mosquitto, and a real congestion model served by `bentoml serve`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.harness import REPO, free_port, wait_for

EXAMPLE = Path(REPO) / "modules" / "examples" / "smart-traffic"
APPS = EXAMPLE / "apps"
TRAFFIC_CSV = EXAMPLE / "data" / "traffic.csv"
sys.path.insert(0, str(APPS))  # the unit tests import the apps' modules as the apps do


def app_env(workdir: Path, app: str, instance: int = 0, **extra) -> dict:
    """Stratum's contract: PATH, HOME (the working dir), LANG, STRATUM_* and the app's own env."""
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
           "HOME": str(workdir), "LANG": "C.UTF-8", "STRATUM_APP": app, "STRATUM_INSTANCE": str(instance),
           "STRATUM_NODE": "test-node", "STRATUM_HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


class App:
    """One app instance: its own working directory with a copy of apps/, `python3 <script>.py`."""

    def __init__(self, root: Path, name: str, script: str, instance: int = 0, **env):
        self.name, self.script = name, script
        self.workdir = root / f"{name}-{instance}"
        if not self.workdir.exists():
            shutil.copytree(APPS, self.workdir, ignore=shutil.ignore_patterns("__pycache__"))
        self.env = app_env(self.workdir, name, instance, **env)
        self.log_path = self.workdir / "app.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "App":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, f"{self.script}.py"], cwd=self.workdir, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        return self

    def run(self, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run to completion (batch apps)."""
        return subprocess.run([sys.executable, f"{self.script}.py"], cwd=self.workdir, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not stop within {timeout}s of SIGTERM:\n{self.log_tail()}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def log_events(self, event: str) -> list[dict]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("event") == event:
                    out.append(rec)
        return out


class Apps:
    """Starts apps under one directory and stops every one of them at the end of the test."""

    def __init__(self, root: Path):
        self.root, self.started = root, []

    def start(self, name: str, script: str, instance: int = 0, **env) -> App:
        app = App(self.root, name, script, instance, **env).start()
        self.started.append(app)
        return app

    def make(self, name: str, script: str, instance: int = 0, **env) -> App:
        return App(self.root, name, script, instance, **env)

    def close(self) -> None:
        for app in reversed(self.started):
            try:
                app.stop(10)
            except AssertionError:
                pass


@pytest.fixture
def apps(tmp_path):
    a = Apps(tmp_path)
    yield a
    a.close()


def tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_json(port: int, path: str):
    status, body = http_get(port, path)
    assert status == 200, (status, body[:300])
    return json.loads(body)


def start_broker(apps: Apps, port: int | None = None, **env) -> tuple[App, int]:
    """broker.py on a free port; fails (never skips) when mosquitto is not installed."""
    port = port or free_port()
    broker = apps.start("broker", "broker", STRATUM_PORT_MQTT=port, **env)
    try:
        wait_for(lambda: tcp_open(port) or not broker.alive(), timeout=15, what="mosquitto to listen")
    finally:
        if not broker.alive():
            pytest.fail(f"the broker exited with {broker.proc.returncode}:\n{broker.log_tail()}")
    return broker, port


class Subscriber:
    """A plain paho client collecting JSON messages of a topic filter, as an operator's tool would."""

    def __init__(self, port: int, topic: str):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{os.getpid()}-{port}")

        def on_connect(client, userdata, flags, rc, props):
            client.subscribe(topic, qos=1)

        def on_subscribe(*args):
            self.ready.set()

        def on_message(client, userdata, msg):
            with self.lock:
                self.messages.append((msg.topic, json.loads(msg.payload)))

        self.client.on_connect, self.client.on_subscribe, self.client.on_message = on_connect, on_subscribe, on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(10), "test subscriber could not subscribe"

    def snapshot(self) -> list[tuple[str, dict]]:
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- the model ----------------------------------------------------------------------------------
SPEC = {"task": "classification", "target": "congestion",
        "candidates": [{"algorithm": "random_forest", "grid": {"n_estimators": [40], "max_depth": [10]}}],
        "preprocessing": [{"impute": {"strategy": "median"}}, {"scale": "standard"},
                          {"one_hot": ["intersection", "weather"]}],
        "selection": {"metric": "accuracy", "cv_folds": 2}}


@pytest.fixture(scope="session")
def congestion_model(tmp_path_factory):
    """A congestion model trained on data/traffic.csv by control_plane/ml, packaged as a bento by
    control_plane/packaging and served by `bentoml serve` (stratum/runtime's ReplicaRunner): the
    same path a stratum_service takes. Yields its base URL."""
    from control_plane.ml.datasets import load_file
    from control_plane.ml.train import train
    from control_plane.packaging.build import build_bento
    from stratum.runtime.runner import ReplicaRunner

    root = tmp_path_factory.mktemp("congestion-model")
    result = train(load_file(str(TRAFFIC_CSV)).frame, SPEC, workers=1, seed=0)
    result.save(str(root / "artifact"))
    bento = build_bento(root / "artifact", "congestion", result.version, root / "bentoml", root / "work")
    runner = ReplicaRunner(root / "bentoml", root / "run")
    replica = runner.start(bento.tag)
    yield replica.url
    runner.stop_all()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'history.db'}"


def wait_until(cond, timeout: float, what: str, apps_to_show: list[App] = ()):
    """wait_for, with the logs of `apps_to_show` in the failure message."""
    try:
        return wait_for(cond, timeout=timeout, interval=0.2, what=what)
    except AssertionError as exc:
        logs = "\n".join(f"--- {a.name} ({'alive' if a.alive() else 'exited'}):\n{a.log_tail(25)}" for a in apps_to_show)
        raise AssertionError(f"{exc}\n{logs}") from None


def db_rows(url: str, sql: str, args=()) -> list[tuple]:
    """Rows of a query on the history store, read the way an operator would (not through history.py);
    `?` placeholders on both databases."""
    import history

    kind, target = history.parse_url(url)
    if kind == "sqlite":
        conn = sqlite3.connect(f"file:{target}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(target) as conn:
        return [tuple(r) for r in conn.execute(sql.replace("?", "%s"), args).fetchall()]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    """A history store URL: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    return request.getfixturevalue("postgres_url")
