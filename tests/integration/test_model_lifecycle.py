"""The model lifecycle over the real API: dataset → training operation → bento → node replicas →
predictions, a rolling update with a request loop running, drift-triggered retraining, and delete.
Real control plane, real node daemon, real `bentoml serve` processes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pandas as pd
import psutil
import pytest
from google.protobuf import json_format

from control_plane.ml import inference
from tests.harness import ControlPlane, NodeDaemon, stratum_argv, wait_for
from tests.lifecycle import DATA, model_spec, predict, rows_of, upload, wait_service, wait_trained
from stratum.v1 import datasets_pb2 as ds, models_pb2 as m

pytestmark = pytest.mark.timeout(600)

@pytest.fixture
def cluster(tmp_path):
    cp = ControlPlane(str(tmp_path), extra=["--retrain-interval", "2s", "--training-workers", "2"]).start()
    node = NodeDaemon(str(tmp_path), "edge-1", cp.endpoint, cp.join_token, tier="edge").start()
    c = cp.client()
    wait_for(lambda: c.nodes().get("edge-1") and c.nodes()["edge-1"].state == "ready", 30, what="node ready")
    yield cp, node, c
    c.close()
    node.stop()
    cp.stop()


def test_train_serve_roll_drift_and_delete(cluster, tmp_path):
    cp, node, c = cluster
    # A SQL dataset, so a drift-triggered retraining sees new rows (the query runs again).
    db = tmp_path / "traffic.db"
    base = pd.read_csv(DATA / "traffic.csv")
    drifted = pd.read_csv(DATA / "traffic-drifted.csv")
    with sqlite3.connect(db) as con:
        base.to_sql("traffic", con, index=False)
    c.CreateDataset(ds.DatasetSpec(name="traffic", source=f"sqlite:///{db}", query="SELECT * FROM traffic", target="congestion"))

    # Training is an operation: Create returns at once, progress shows, then a version.
    created = c.CreateModel(model_spec("congestion", "traffic"))
    assert created.state == "training" and created.operation.id.startswith("op-")
    seen = set()
    wait_for(lambda: seen.add(c.GetOperation(m.GetOperationRequest(id=created.operation.id)).message) or
             c.GetModel(m.GetModelRequest(name="congestion")).state != "training", 240, interval=0.2, what="training")
    model = wait_trained(c, "congestion")
    v1 = model.serving
    assert v1.best_algorithm == "random_forest" and [e.algorithm for e in v1.leaderboard] == ["random_forest", "logistic_regression"]
    assert v1.bento_digest and v1.bento_size_bytes > 0 and v1.memory_mb > 50 and v1.load_time_s > 0
    assert any("fold" in s for s in seen), seen  # progress was visible while it ran
    # Create is idempotent on the name and spec.
    assert c.CreateModel(model_spec("congestion", "traffic")).serving.version == v1.version

    # The downloadable script reproduces the version's best score.
    script = c.GetTrainingScript(m.GetTrainingScriptRequest(name="congestion"))
    assert script.version == v1.version and "RandomForestClassifier" in script.source

    # Serve it: the node fetches the bento over FetchBento and starts a real `bentoml serve`.
    c.CreateService(m.ServiceSpec(name="congestion", model="congestion", replicas=1))
    svc = wait_service(c, "congestion", v1.version)
    endpoint = svc.endpoints[0]
    local, meta = inference.load(str(Path(cp.data_dir) / "models" / "congestion" / v1.version))
    sample = rows_of(base, 40)
    assert predict(endpoint, sample) == inference.predict(local, meta, sample)

    # A steady request loop while the model changes (new grid → new version → rolling update).
    failures, answered, stop = [], [0], threading.Event()

    def loop():
        while not stop.is_set():
            try:
                predict(endpoint, sample[:5])
                answered[0] += 1
            except Exception as e:  # noqa: BLE001 - counted, asserted below
                failures.append(repr(e))
            time.sleep(0.02)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        spec2 = model_spec("congestion", "traffic")
        spec2.grids["random_forest"].update({"n_estimators": [30]})
        old_op = c.GetModel(m.GetModelRequest(name="congestion")).operation.id
        c.UpdateModel(spec2)
        v2 = wait_trained(c, "congestion", old=old_op).serving
        assert v2.version != v1.version
        wait_service(c, "congestion", v2.version)
        time.sleep(1)
    finally:
        stop.set()
        t.join(30)
    assert not failures and answered[0] > 20, (failures[:3], answered)
    assert c.GetService(m.GetServiceRequest(name="congestion")).endpoints[0] == endpoint  # same URL after the roll

    # Drift: requests now look like the drifted data; new rows arrive in the source table.
    with sqlite3.connect(db) as con:
        drifted.to_sql("traffic", con, index=False, if_exists="append")
    spec3 = json_format.ParseDict(json_format.MessageToDict(spec2, preserving_proto_field_name=True), m.ModelSpec())
    spec3.retrain.CopyFrom(m.Retrain(on_drift=True, min_samples=200))
    c.UpdateModel(spec3)  # retrain settings apply without training
    assert c.GetModel(m.GetModelRequest(name="congestion")).serving.version == v2.version
    drift_rows = rows_of(drifted, 400)
    for i in range(0, 400, 20):
        predict(endpoint, drift_rows[i:i + 20])
    v3 = wait_for(lambda: (lambda s: s if s.version not in (v1.version, v2.version) else None)(
        c.GetModel(m.GetModelRequest(name="congestion")).serving), 240, interval=1, what="drift retraining")
    assert v3.reason.startswith("drift:") and v3.dataset_digest != v2.dataset_digest
    wait_service(c, "congestion", v3.version)

    # Pin the old version: the service rolls back.
    spec4 = m.ModelSpec()
    spec4.CopyFrom(spec3)
    spec4.pinned_version = v2.version
    c.UpdateModel(spec4)
    wait_service(c, "congestion", v2.version)

    # Delete: replicas stop, the endpoint's port is freed.
    port = int(endpoint.rsplit(":", 1)[1])
    pids = [p.pid for p in psutil.Process(node.proc.pid).children(recursive=True)]
    assert pids
    c.DeleteService(m.DeleteServiceRequest(name="congestion"))
    wait_for(lambda: _not_found(lambda: c.GetService(m.GetServiceRequest(name="congestion"))), 60, what="service gone")
    wait_for(lambda: not any(psutil.pid_exists(p) for p in pids), 30, what="replica processes gone")
    assert not any(conn.laddr.port == port for conn in psutil.net_connections("tcp") if conn.status == "LISTEN")
    c.DeleteModel(m.DeleteModelRequest(name="congestion"))
    assert _not_found(lambda: c.GetModel(m.GetModelRequest(name="congestion")))


def _not_found(call) -> bool:
    try:
        call()
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            return True
        raise
    return False


def test_a_corrupted_bento_fails_the_service_on_the_node_and_starts_nothing(cluster, tmp_path):
    cp, node, c = cluster
    from control_plane.packaging.store import ArtifactStore

    blob = upload(c, (DATA / "traffic.csv").read_bytes())
    c.CreateDataset(ds.DatasetSpec(name="traffic", source="file://traffic.csv", blob_sha256=blob, target="congestion"))
    spec = model_spec("small", "traffic")
    del spec.candidates[1:]
    spec.grids.clear()
    c.CreateModel(spec)
    version = wait_trained(c, "small").serving
    # `stratum model script` downloads the version's training script; run outside Stratum it gets the same score.
    script = tmp_path / "train_small.py"
    out = subprocess.run([*stratum_argv("model", "--endpoint", cp.endpoint, "--data-dir", cp.data_dir, "script", "small",
                                        "-o", str(script))], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and f"version {version.version}" in out.stderr, out.stderr
    ran = subprocess.run([sys.executable, str(script), str(DATA / "traffic.csv"), "--out", str(tmp_path / "m.joblib")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout.strip().splitlines()[-1])["score"] == version.score
    bad = subprocess.run([*stratum_argv("model", "--endpoint", cp.endpoint, "--data-dir", cp.data_dir, "script", "small",
                                        "--version", "0123456789ab")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "has no version '0123456789ab'" in bad.stderr and version.version in bad.stderr

    # The archive rots on the control plane's disk after it was stored (same size, other bytes).
    path = ArtifactStore(cp.data_dir).path(version.bento_digest)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    c.CreateService(m.ServiceSpec(name="small", model="small"))
    svc = wait_for(lambda: (lambda s: s if s.state == "failed" else None)(c.GetService(m.GetServiceRequest(name="small"))),
                   120, interval=0.5, what="service failed on the node")
    assert "DigestMismatch" in svc.message and "failed verification" in svc.message and version.bento_digest[:12] in svc.message
    assert svc.placements[0].ready_replicas == 0 and not svc.endpoints[0].endswith(":0")
    assert not [p for p in psutil.Process(node.proc.pid).children(recursive=True) if "bentoml" in " ".join(p.cmdline())]
    assert not list((Path(node.data_dir) / "bentos" / "blobs").glob("*.bento"))  # nothing corrupt kept in the cache
    c.DeleteService(m.DeleteServiceRequest(name="small"))
    wait_for(lambda: _not_found(lambda: c.GetService(m.GetServiceRequest(name="small"))), 60, what="service gone")


def test_training_resumes_after_the_control_plane_is_killed(cluster):
    cp, node, c = cluster
    blob = upload(c, (DATA / "traffic.csv").read_bytes())
    c.CreateDataset(ds.DatasetSpec(name="traffic", source="file://traffic.csv", blob_sha256=blob, target="congestion"))
    spec = model_spec("resumed", "traffic")
    spec.grids["random_forest"].update({"n_estimators": [40, 60, 80], "max_depth": [6, 10]})
    op = c.CreateModel(spec).operation.id
    wait_for(lambda: c.GetOperation(m.GetOperationRequest(id=op)).done >= 1, 120, interval=0.1, what="training under way")
    job = next(p for p in psutil.Process(cp.proc.pid).children() if "control_plane.training_job" in " ".join(p.cmdline()))
    helpers = [job, *job.children(recursive=True)]  # its worker pool
    assert len(helpers) >= 2
    cp.kill()  # SIGKILL: the store says "running"; the training job and its workers die with it
    c.close()
    _, orphans = psutil.wait_procs(helpers, timeout=15)
    assert not orphans, [p.cmdline() for p in orphans]
    cp.start()
    c = cp.client()
    model = wait_trained(c, "resumed")
    assert model.operation.id == op and model.operation.state == "succeeded" and model.serving.best_algorithm
    assert list(model.versions) == [model.serving.version]  # trained once, recorded once
    c.close()
