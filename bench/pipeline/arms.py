"""The two arms of the pipeline bench: the smart-traffic apps deployed by Stratum, and the same
programs started by hand.

Both arms run the same files (modules/examples/smart-traffic/apps) with the same environment
(Stratum's contract: PATH, HOME, LANG, TMPDIR, STRATUM_*, plus the app's env), each with its own
broker, processor, sensors, model endpoint and SQLite history store. Only one arm's sensors
send at a time; the other arm idles.

StratumArm: a real control plane and node daemon (tests/harness.py); the artifact uploaded by
digest, the congestion model trained, packaged and served as a stratum_service (the node's
router in front of `bentoml serve`), the apps created through the gRPC API and wired with
connects_to. Sensor rates change with UpdateApp (the node restarts the sensors with the new env).

HandArm: the same programs as plain child processes, the model served by a plain
`bentoml serve` of the very bento the node holds; sensor rates change by restarting them.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from stratum.v1 import apps_pb2 as a, datasets_pb2 as ds, models_pb2 as m
from tests.harness import REPO, ControlPlane, NodeDaemon, free_port, wait_for

APPS = Path(REPO) / "modules" / "examples" / "smart-traffic" / "apps"
TRAFFIC_CSV = APPS.parent / "data" / "traffic.csv"
INTERSECTIONS = 8  # i-01 .. i-08, all the sensor knows; split evenly over the sensor instances
IDLE_RATE = 0.001  # a Stratum sensor "off": one round at start, the next in 1000 s


def python_path() -> str:
    """PATH as the node daemon gives apps: its own Python first, so `python3` is the venv's."""
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"


def apps_tar() -> tuple[bytes, str]:
    """The apps directory as stratum_app uploads it (provider/artifact.py's deterministic tar),
    without caches a test run may have left; (bytes, sha256)."""
    from provider.artifact import pack

    buf = io.BytesIO()
    with _clean_copy() as root:
        pack(str(root), buf)
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()


class _clean_copy:
    def __enter__(self) -> Path:
        import tempfile

        self.tmp = Path(tempfile.mkdtemp(prefix="stratum-bench-apps-"))
        shutil.copytree(APPS, self.tmp / "apps", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        return self.tmp / "apps"

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def upload(c, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()

    def messages():
        yield ds.UploadBlobRequest(header=ds.BlobHeader(sha256=sha, size=len(data)))
        for i in range(0, len(data), 1 << 20):
            yield ds.UploadBlobRequest(chunk=data[i:i + (1 << 20)])

    c.stub.UploadBlob(messages(), metadata=c.md, timeout=60)
    return sha


def processes_under(path: Path) -> list[psutil.Process]:
    """Living processes whose working directory is under `path`."""
    out = []
    for p in psutil.process_iter(["cwd"]):
        try:
            if (p.info["cwd"] or "").startswith(str(path)) and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def kill_group(proc: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM to the process group, SIGKILL after `grace`; then any descendant that lives on in a
    session of its own (bentoml's workers) is killed too."""
    if proc.poll() is not None:
        return
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)
    for p in descendants:
        try:
            p.kill()
        except psutil.Error:
            pass


# -- the apps' specs (shared by both arms: the same env) -------------------------------------------
def processor_env(db: Path, window_s: float) -> dict[str, str]:
    return {"HISTORY_STORE": f"sqlite:///{db}", "WINDOW_S": f"{window_s:g}", "LOG_EVERY": "30"}


def sensor_env(rate: float, sensors: int) -> dict[str, str]:
    return {"INTERSECTIONS_PER_INSTANCE": str(INTERSECTIONS // sensors), "RATE": f"{rate:g}", "SEED": "7",
            "SIM_MINUTES_PER_MESSAGE": "0.5"}


HEALTH_HTTP = a.HealthCheck(http="/healthz", interval_s=5, grace_s=30)
HEALTH_MQTT = a.HealthCheck(tcp="mqtt", interval_s=5, grace_s=30)


class StratumArm:
    name = "stratum"
    own_only = {"node daemon", "control plane"}  # the apps and bentoml are the node daemon's children

    def __init__(self, root: Path, window_s: float, sensors: int):
        self.root = root
        self.window_s, self.n_sensors = window_s, sensors
        self.cp = ControlPlane(str(root), heartbeat_interval="5s", node_timeout="15s")
        self.node: NodeDaemon | None = None
        self.c = None
        self.db = root / "stratum-history.db"
        self.rate: float | None = None
        self.sensor_version = 0

    # -- setup ------------------------------------------------------------------------------------
    def start(self, say) -> None:
        self.cp.start()
        self.c = self.cp.client()
        self.node = NodeDaemon(str(self.root), "fog-1", self.cp.endpoint, self.cp.join_token, tier="fog").start()
        wait_for(lambda: (n := self.c.nodes().get("fog-1")) and n.state == "ready", 60, what="node fog-1 ready")
        t0 = time.monotonic()
        self._model()
        say(f"congestion model trained and served by Stratum in {time.monotonic() - t0:.0f}s "
            f"(bento {self.bento_tag})")
        data, sha = apps_tar()
        upload(self.c, data)
        self.artifact = a.Artifact(sha256=sha, size=len(data), name="apps", directory=True)
        self.c.CreateApp(self.spec("broker"))
        self.wait_ready("broker")
        self.c.CreateApp(self.spec("processor"))
        self.wait_ready("processor")
        self.c.CreateApp(self.spec("sensor", IDLE_RATE))
        self.sensor_version = self.wait_ready("sensor").spec_version
        self.rate = None
        app = self.c.GetApp(a.GetAppRequest(name="broker"))
        self.broker_port = int(app.endpoints["mqtt"].addresses[0].rsplit(":", 1)[1])
        app = self.c.GetApp(a.GetAppRequest(name="processor"))
        self.processor_port = int(app.endpoints["http"].addresses[0].rsplit(":", 1)[1])

    def _model(self) -> None:
        c = self.c
        with open(TRAFFIC_CSV, "rb") as f:
            sha = upload(c, f.read())
        c.CreateDataset(ds.DatasetSpec(name="traffic", source="file://traffic.csv", blob_sha256=sha, target="congestion"))
        spec = m.ModelSpec(name="congestion", dataset="traffic", task="classification", target="congestion",
                           candidates=["random_forest"],
                           preprocessing=m.Preprocessing(impute="median", scale="standard",
                                                         one_hot=["intersection", "weather"]),
                           selection=m.Selection(metric="accuracy", cv_folds=2), seed=7)
        spec.grids["random_forest"].update({"n_estimators": [40], "max_depth": [10]})
        c.CreateModel(spec)

        def trained():
            model = c.GetModel(m.GetModelRequest(name="congestion"))
            if model.state == "failed":
                raise RuntimeError(f"training failed: {model.error}")
            return model if model.state == "ready" and model.operation.state != "running" else None

        version = wait_for(trained, 600, interval=0.5, what="model congestion trained").serving.version
        c.CreateService(m.ServiceSpec(name="congestion", model="congestion", replicas=1))

        def served():
            svc = c.GetService(m.GetServiceRequest(name="congestion"))
            if svc.state == "failed":
                raise RuntimeError(f"service failed: {svc.message}")
            return svc if svc.state == "ready" and svc.version == version else None

        self.service_url = wait_for(served, 300, interval=0.5, what="service congestion ready").endpoints[0]
        self.bento_home = Path(self.node.data_dir) / "bentos" / "bentoml"
        (bento,) = [p for p in (self.bento_home / "bentos").glob("*/*") if p.is_dir() and p.name != "latest"]
        self.bento_tag = f"{bento.parent.name}:{bento.name}"

    def spec(self, app: str, rate: float | None = None, name: str | None = None) -> a.AppSpec:
        """The app as a user would declare it: the apps artifact, `python3 <script>.py`."""
        common = dict(name=name or app, kind="service", artifact=self.artifact, command="python3",
                      args=[f"{app}.py"], restart=a.RestartPolicy(attempts=5, delay_s=1))
        if app == "broker":
            return a.AppSpec(**common, ports={"mqtt": 0}, health=HEALTH_MQTT)
        if app == "processor":
            return a.AppSpec(**common, ports={"http": 0}, health=HEALTH_HTTP, connects_to=["broker", "congestion"],
                             env=processor_env(self.db, self.window_s))
        if app == "sensor":
            return a.AppSpec(**common, count=self.n_sensors, connects_to=["broker"],
                             env=sensor_env(rate, self.n_sensors))
        raise ValueError(app)

    def wait_ready(self, name: str, timeout: float = 120, version: int = 0) -> a.App:
        def ok():
            app = self.c.GetApp(a.GetAppRequest(name=name))
            if app.state == "failed":
                raise RuntimeError(f"app {name} failed: {app.message}")
            return app if app.state == "ready" and app.spec_version >= version else None

        return wait_for(ok, timeout, interval=0.05, what=f"app {name} ready")

    # -- what the bench drives ----------------------------------------------------------------------
    def set_rate(self, rate: float | None) -> None:
        """Sensors at `rate` readings/s per intersection (None: idle), through UpdateApp."""
        if rate == self.rate:
            return
        updated = self.c.UpdateApp(self.spec("sensor", rate or IDLE_RATE))
        self.sensor_version = self.wait_ready("sensor", version=updated.spec_version).spec_version
        self.rate = rate

    @property
    def apps_dir(self) -> Path:
        return Path(self.node.data_dir) / "apps"

    def sensor_state_files(self) -> list[Path]:
        return [self.apps_dir / f"sensor-{i}" / "sensor-state.json" for i in range(self.n_sensors)]

    def pid_groups(self) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {"sensors": [], "broker": [], "processor": []}
        for p in processes_under(self.apps_dir):
            app = Path(p.info["cwd"]).relative_to(self.apps_dir).parts[0].rsplit("-", 1)[0]
            groups.setdefault(app + "s" if app == "sensor" else app, []).append(p.pid)
        node = psutil.Process(self.node.proc.pid)
        groups["model"] = [c.pid for c in node.children() if "bentoml" in " ".join(c.cmdline())]
        groups["node daemon"] = [self.node.proc.pid]  # with the service's router, which runs in it
        groups["control plane"] = [self.cp.proc.pid]
        return groups

    def close(self, say) -> None:
        """Delete what the bench created, wait until the node runs none of it, stop the daemons;
        anything left behind under the node's directory is reported (and stopped)."""
        if self.c is not None:
            for delete in (lambda: self.c.DeleteApp(a.DeleteAppRequest(name="sensor")),
                           lambda: self.c.DeleteApp(a.DeleteAppRequest(name="processor")),
                           lambda: self.c.DeleteApp(a.DeleteAppRequest(name="broker")),
                           lambda: self.c.DeleteService(m.DeleteServiceRequest(name="congestion"))):
                try:
                    delete()
                except Exception:  # noqa: BLE001 - best effort: the node's stop takes the rest
                    pass
        if self.node is not None:
            node_dir = Path(self.node.data_dir)
            try:
                wait_for(lambda: not processes_under(node_dir), 60, interval=0.2, what="the node to stop its apps")
            except AssertionError as e:
                say(f"stratum: {e}")
            t0 = time.monotonic()
            code = self.node.stop(30)
            if code != 0:
                say(f"stratum: the node daemon exited with {code} after {time.monotonic() - t0:.1f}s")
            left = processes_under(node_dir)
            if left:
                say(f"stratum: left behind by the node daemon: {[(p.pid, ' '.join(p.cmdline())[:80]) for p in left]}")
                for p in left:
                    try:
                        p.kill()
                    except psutil.Error:
                        pass
        self.cp.stop()


class HandProcess:
    """One program of the apps directory, started as a user would: a copy of the files, the same
    environment Stratum's exec driver gives, output to a log file, its own session."""

    def __init__(self, root: Path, app: str, script: str, instance: int = 0, **env):
        self.app, self.script, self.instance = app, script, instance
        self.workdir = root / f"{app}-{instance}"
        if not self.workdir.exists():
            shutil.copytree(APPS, self.workdir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (self.workdir / "tmp").mkdir(exist_ok=True)
        self.env = {"PATH": python_path(), "HOME": str(self.workdir), "LANG": "C.UTF-8",
                    "TMPDIR": str(self.workdir / "tmp"), "STRATUM_APP": app, "STRATUM_INSTANCE": str(instance),
                    "STRATUM_NODE": "by-hand", "STRATUM_HOST": "127.0.0.1", **{k: str(v) for k, v in env.items()}}
        self.proc: subprocess.Popen | None = None

    def start(self) -> "HandProcess":
        with open(self.workdir / "app.log", "ab") as log:
            self.proc = subprocess.Popen(["python3", f"{self.script}.py"], cwd=self.workdir, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            kill_group(self.proc)


class HandArm:
    name = "by hand"

    def __init__(self, root: Path, window_s: float, sensors: int, bento_home: Path, bento_tag: str):
        from stratum.runtime.runner import bentoml_cli, bentoml_env

        self.root, self.window_s, self.n_sensors = root, window_s, sensors
        self.db = root / "hand-history.db"
        self.model_port, self.broker_port, self.processor_port = free_port(), free_port(), free_port()
        with open(root / "hand-bentoml.log", "ab") as log:
            # `bentoml serve` of the bento the node imported, exactly as a user would run it
            self.model = subprocess.Popen([*bentoml_cli(), "serve", bento_tag, "--port", str(self.model_port),
                                           "--host", "127.0.0.1"], env=bentoml_env(bento_home), stdout=log,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.broker_url = f"mqtt://127.0.0.1:{self.broker_port}"
        self.broker = HandProcess(root, "broker", "broker", STRATUM_PORT_MQTT=self.broker_port)
        self.processor = HandProcess(root, "processor", "processor", STRATUM_PORT_HTTP=self.processor_port,
                                     STRATUM_BROKER_URL=self.broker_url,
                                     STRATUM_CONGESTION_URL=f"http://127.0.0.1:{self.model_port}",
                                     **processor_env(self.db, window_s))
        self.sensors: list[HandProcess] = []
        self.rate: float | None = None

    def start(self, say) -> None:
        from stratum.runtime.runner import http_ok

        self.broker.start()
        wait_for(lambda: _tcp_open(self.broker_port), 30, what="hand broker listening")
        wait_for(lambda: self.model.poll() is None and http_ok("127.0.0.1", self.model_port, "/healthz", timeout=2),
                 180, interval=0.2, what="hand bentoml serve healthy")
        self.processor.start()
        wait_for(lambda: http_ok("127.0.0.1", self.processor_port, "/healthz", timeout=2), 60,
                 what="hand processor subscribed")

    def set_rate(self, rate: float | None) -> None:
        if rate == self.rate:
            return
        for s in self.sensors:
            s.stop()
        self.sensors = []
        if rate:
            self.sensors = [HandProcess(self.root, "sensor", "sensor", i, STRATUM_BROKER_URL=self.broker_url,
                                        **sensor_env(rate, self.n_sensors)).start() for i in range(self.n_sensors)]
        self.rate = rate

    def sensor_state_files(self) -> list[Path]:
        return [self.root / f"sensor-{i}" / "sensor-state.json" for i in range(self.n_sensors)]

    def pid_groups(self) -> dict[str, list[int]]:
        return {"sensors": [s.proc.pid for s in self.sensors if s.proc], "broker": [self.broker.proc.pid],
                "processor": [self.processor.proc.pid], "model": [self.model.pid]}

    def close(self, say) -> None:
        for p in [*self.sensors, self.processor, self.broker]:
            p.stop()
        kill_group(self.model)


def _tcp_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
