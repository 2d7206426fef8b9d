"""stratum_dataset → stratum_model → stratum_service with real terraform, a real control plane,
a real node daemon and real `bentoml serve` replicas: the smart-traffic example module."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import pandas as pd
import psutil
import pytest

from control_plane.ml import inference
from tests.harness import NodeDaemon, wait_for
from stratum.v1 import models_pb2 as m
from tests.provider.conftest import provider_hcl
from tests.provider.tfharness import Step, Workspace, run_steps

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

EXAMPLE = Path(__file__).resolve().parents[2] / "modules" / "examples" / "smart-traffic"
FEATURES = ["intersection", "hour", "weekday", "weather", "temperature_c", "vehicles_per_min", "pedestrians_per_min"]
MODEL, SERVICE = "stratum_model.congestion", "stratum_service.congestion"


def example_config() -> str:
    """The example's resources and outputs; the test's own provider block replaces its terraform/provider blocks."""
    text = (EXAMPLE / "main.tf").read_text()
    body = text[text.index('variable "data_file"'):]
    return body.replace('provider "stratum" {}\n', "")


def predict(endpoint: str, rows: list[dict]) -> list:
    req = urllib.request.Request(endpoint + "/predict", data=json.dumps({"instances": rows}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.loads(r.read())["predictions"]


@pytest.fixture
def node(tmp_path, control_plane):
    n = NodeDaemon(str(tmp_path), "edge-1", control_plane.endpoint, control_plane.join_token, tier="edge").start()
    c = control_plane.client()
    wait_for(lambda: (c.nodes().get("edge-1") or None) and c.nodes()["edge-1"].state == "ready", 30, what="node ready")
    c.close()
    yield n
    n.stop()


def test_smart_traffic_apply_predict_roll_and_destroy(ws, control_plane, node):
    (ws.dir / "data").mkdir(parents=True)
    shutil.copy(EXAMPLE / "data" / "traffic.csv", ws.dir / "data" / "traffic.csv")
    # The model and its service alone: the pipeline's apps around them have their own e2e test.
    (ws.dir / "terraform.tfvars").write_text("pipeline = false\n")
    cfg = ws.provider + example_config()
    rows = json.loads(pd.read_csv(EXAMPLE / "data" / "traffic.csv")[FEATURES].head(30).to_json(orient="records"))

    def served(ws):
        s, svc = ws.resources()[MODEL], ws.resources()[SERVICE]
        assert s["best_algorithm"] in ("random_forest", "gradient_boosting", "logistic_regression")
        assert len(s["leaderboard"]) == 4  # 1 + 2 random_forest grid points + 1
        assert s["leaderboard"][0]["algorithm"] == s["best_algorithm"] and s["score"] == s["leaderboard"][0]["score"]
        assert s["version"] == s["artifact_digest"][7:19] and s["bento_digest"].startswith("sha256:")
        assert svc["state"] == "ready" and svc["version"] == s["version"] and len(svc["endpoints"]) == 1
        assert svc["placements"][0]["node_name"] == "edge-1" and svc["placements"][0]["ready_replicas"] == 1
        assert ws.outputs()["endpoint"] == svc["endpoints"][0]
        # The endpoint answers with the selected model's own predictions.
        local, meta = inference.load(str(Path(control_plane.data_dir) / "models" / "congestion" / s["version"]))
        assert predict(svc["endpoints"][0], rows) == inference.predict(local, meta, rows)

    run_steps(ws, [Step(cfg, check=served, import_address=MODEL, import_id="congestion")])
    before = ws.resources()
    ws.state_rm(SERVICE)
    ws.import_(SERVICE, "congestion")
    assert ws.resources()[SERVICE] == before[SERVICE]
    assert ws.plan().rc == 0

    # The dataset changes: plan shows the model retraining; apply rolls the replicas while a
    # steady request loop keeps getting answers.
    v1, endpoint = before[MODEL]["version"], before[SERVICE]["endpoints"][0]
    shutil.copy(EXAMPLE / "data" / "traffic-drifted.csv", ws.dir / "data" / "traffic.csv")
    res = ws.plan()
    assert res.rc == 2 and f"{MODEL} will be updated in-place" in res.stdout, res.stdout
    failures, answered, stop = [], [0], threading.Event()

    def loop():
        while not stop.is_set():
            try:
                predict(endpoint, rows[:5])
                answered[0] += 1
            except Exception as e:  # noqa: BLE001 - counted, asserted below
                failures.append(repr(e))
            time.sleep(0.02)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        ws.apply()
        v2 = ws.resources()[MODEL]["version"]
        assert v2 != v1
        c = control_plane.client()
        wait_for(lambda: c.GetService(m.GetServiceRequest(name="congestion")).placements[0].version == v2, 120,
                 what="the node serving the new version")
        c.close()
        time.sleep(1)
    finally:
        stop.set()
        t.join(30)
    assert not failures and answered[0] > 20, (failures[:3], answered[0])
    ws.apply()  # refreshes the service's computed version: no diff
    assert ws.resources()[SERVICE]["version"] == v2 and ws.plan().rc == 0

    # Destroy: replicas stopped, endpoint port freed, nothing left on the control plane.
    port = int(endpoint.rsplit(":", 1)[1])
    replicas = [p.pid for p in psutil.Process(node.proc.pid).children(recursive=True)]
    assert replicas
    ws.destroy()
    wait_for(lambda: not any(psutil.pid_exists(p) for p in replicas), 30, what="replica processes gone")
    assert not any(c.laddr.port == port for c in psutil.net_connections("tcp") if c.status == "LISTEN")
    assert ws.resources() == {}


@pytest.mark.parametrize("model_args,expected", [
    ('task = "classification"\n  target = "no_such_column"\n  candidates = ["random_forest"]',
     ['target', "'no_such_column'"]),
    ('task = "regression"\n  target = "weather"\n  candidates = ["random_forest"]', ["target", "weather"]),
    ('task = "classification"\n  candidates = ["random_forest", "deep_magic"]', ["candidates[1]", "deep_magic"]),
    ('task = "classification"\n  candidates = ["random_forest"]\n  selection = { metric = "rmse" }', ["selection.metric", "rmse"]),
    ('task = "classification"\n  candidates = ["random_forest"]\n  grids = { random_forest = jsonencode({ n_trees = [1] }) }',
     ['grids["random_forest"]', "n_trees"]),
    ('task = "classification"\n  candidates = ["random_forest"]\n  timeouts = { create = "soon" }', ["Invalid timeout", "soon"]),
], ids=["missing-target-column", "non-numeric-regression-target", "unknown-algorithm", "metric-task-mismatch", "bad-grid",
        "bad-timeout"])
def test_bad_model_specs_fail_at_plan_and_create_nothing(dataset_ws, model_args, expected):
    ws, plane = dataset_ws
    model = (f'resource "stratum_model" "m" {{\n  name = "m"\n  dataset = stratum_dataset.traffic.id\n  {model_args}\n'
             '  preprocessing = { impute = "median", one_hot = ["all"] }\n}\n')
    run_steps(ws, [Step(ws.provider + DATASET + model, plan_only=True, expect_error=["Error", *expected])])
    admin = plane.client()
    try:
        with pytest.raises(grpc.RpcError) as e:
            admin.GetModel(m.GetModelRequest(name="m"))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        admin.close()


DATASET = 'resource "stratum_dataset" "traffic" {\n  name = "traffic"\n  source = "file://data/traffic.csv"\n  target = "congestion"\n}\n'


@pytest.fixture(scope="module")
def dataset_ws(tmp_path_factory, provider_home, module_control_plane):
    """(workspace, control plane): the traffic dataset applied once; each bad model is planned on it and
    creates nothing, so the cases share both."""
    plane = module_control_plane
    ws = Workspace(tmp_path_factory.mktemp("model-errors") / "tf", provider_home, {"STRATUM_TOKEN": plane.admin_token})
    ws.provider = provider_hcl(plane.endpoint, plane.ca_pem_path)
    (ws.dir / "data").mkdir(parents=True)
    shutil.copy(EXAMPLE / "data" / "traffic.csv", ws.dir / "data" / "traffic.csv")
    run_steps(ws, [Step(ws.provider + DATASET)])
    return ws, plane


@pytest.mark.profile_sizes
def test_an_autoscaled_service_applies_imports_and_changes_in_place(ws, control_plane, node):
    """`scaling` with vertical and zero_after: apply, import with an empty plan, then a change of
    bounds is an in-place update. The autoscaler's size shows on the service, never as a diff."""
    (ws.dir / "data").mkdir(parents=True)
    shutil.copy(EXAMPLE / "data" / "traffic.csv", ws.dir / "data" / "traffic.csv")
    text = example_config()
    base = ws.provider + text[:text.index('resource "stratum_service"')]
    scaled = base + '''
resource "stratum_service" "auto" {
  name  = "auto"
  model = stratum_model.congestion.id
  slo   = { p95_latency_ms = 500 }
  scaling = { mode = "reactive", min = 1, max = %d, vertical = true, zero_after = "15m" }
}
'''
    c = control_plane.client()

    def sized(ws):
        svc = ws.resources()["stratum_service.auto"]
        assert svc["scaling"] == {"mode": "reactive", "min": 1, "max": 1, "target_rpm": None, "vertical": True,
                                  "zero_after": "15m"}
        assert svc["running_replicas"] == 1 and svc["state"] == "ready"
        # the autoscaler gives the idle service the fewest cores it measured
        wait_for(lambda: c.GetService(m.GetServiceRequest(name="auto")).size.cpu == 0.25, 90, interval=0.5,
                 what="the smallest replica size")

    run_steps(ws, [Step(scaled % 1, check=sized, import_address="stratum_service.auto", import_id="auto")])
    ws.write(scaled % 2)
    res = ws.plan()
    assert res.rc == 2 and "stratum_service.auto will be updated in-place" in res.stdout, res.stdout
    ws.apply()
    assert ws.resources()["stratum_service.auto"]["scaling"]["max"] == 2 and ws.plan().rc == 0
    assert c.GetService(m.GetServiceRequest(name="auto")).spec.scaling.max == 2
    ws.destroy()
    c.close()
