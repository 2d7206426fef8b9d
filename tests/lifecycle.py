"""Helpers of the model-lifecycle tests: upload a file, a model spec for the smart-traffic data,
wait for a training or a service, POST to an endpoint."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path

import pandas as pd

from stratum.v1 import datasets_pb2 as ds, models_pb2 as m
from tests.harness import wait_for

DATA = Path(__file__).resolve().parents[1] / "modules" / "examples" / "smart-traffic" / "data"
FEATURES = ["intersection", "hour", "weekday", "weather", "temperature_c", "vehicles_per_min", "pedestrians_per_min"]


def upload(c, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()

    def messages():
        yield ds.UploadBlobRequest(header=ds.BlobHeader(sha256=sha, size=len(data)))
        for i in range(0, len(data), 1 << 20):
            yield ds.UploadBlobRequest(chunk=data[i:i + (1 << 20)])  # 1 MiB chunks

    c.stub.UploadBlob(messages(), metadata=c.md, timeout=30)
    return sha


def model_spec(name: str, dataset: str, **kw) -> m.ModelSpec:
    spec = m.ModelSpec(name=name, dataset=dataset, task="classification", target="congestion",
                       candidates=["logistic_regression", "random_forest"],
                       preprocessing=m.Preprocessing(impute="median", scale="standard", one_hot=["intersection", "weather"]),
                       selection=m.Selection(metric="accuracy", cv_folds=3), seed=7, **kw)
    spec.grids["random_forest"].update({"n_estimators": [20], "max_depth": [8]})
    return spec


def wait_trained(c, name: str, timeout: float = 240, old: str = "") -> m.Model:
    def done():
        model = c.GetModel(m.GetModelRequest(name=name))
        if model.state == "failed":
            raise AssertionError(f"training failed: {model.error}")
        op = model.operation
        return model if model.state == "ready" and op.state != "running" and (not old or op.id != old) else None

    return wait_for(done, timeout, interval=0.5, what=f"model {name} trained")


def wait_service(c, name: str, version: str, timeout: float = 180) -> m.Service:
    def ready():
        svc = c.GetService(m.GetServiceRequest(name=name))
        if svc.state == "failed":
            raise AssertionError(f"service failed: {svc.message}")
        return svc if svc.state == "ready" and svc.version == version else None

    return wait_for(ready, timeout, interval=0.5, what=f"service {name} ready on {version}")


def predict(endpoint: str, rows: list[dict]) -> list:
    req = urllib.request.Request(endpoint + "/predict", data=json.dumps({"instances": rows}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.loads(r.read())["predictions"]


def rows_of(frame: pd.DataFrame, n: int) -> list[dict]:
    return json.loads(frame[FEATURES].head(n).to_json(orient="records"))


