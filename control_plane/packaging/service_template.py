"""The BentoML 1.4 service every Stratum model version is packaged as.

build.py copies this file verbatim into the build context as `service.py`, next to a
`model/` folder holding the trained artifact (`model.joblib`: a fitted scikit-learn
Pipeline taking a pandas DataFrame of the feature columns; `metadata.json`: features,
target, task, classes).  The bento therefore carries its model in its own source tree
(`src/model/`), and needs nothing from a model store when it is served.

Endpoints (the KServe v1 convention, see docs/names.md):
  POST /predict  {"instances": [{"col": value, ...}, ...]}  ->  {"predictions": [...]}
  GET  /healthz, /readyz, /metrics                              (BentoML's own)

Each request's rows become a DataFrame of the feature columns, cast to the dtypes training
recorded (metadata features[].input_dtype) when present.
A request missing feature columns, or whose values the pipeline cannot score, gets a 400
with {"error": "..."}; JSON predictions are plain Python values (numpy types converted).

Worker processes: STRATUM_WORKERS (default 1) is read when the service is imported, which
`bentoml serve` does at start-up, so the node daemon sets it per replica (vertical scaling)
without rebuilding the bento.  STRATUM_THREADS sets the threads per worker for /predict.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import typing as t

import bentoml

MODEL_DIR = pathlib.Path(__file__).resolve().parent / "model"


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, "") or default)
    except ValueError:
        return default
    return max(1, value)


WORKERS = _env_int("STRATUM_WORKERS", 1)
THREADS = _env_int("STRATUM_THREADS", 1)


def to_json(value: t.Any) -> t.Any:
    """numpy/pandas values -> JSON-serialisable Python values (NaN and inf -> None)."""
    if hasattr(value, "tolist"):  # numpy arrays and numpy scalars
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if hasattr(value, "item"):
        return to_json(value.item())
    return str(value)


@bentoml.service(name="stratum_model", workers=WORKERS, threads=THREADS, traffic={"timeout": 60})
class StratumModel:
    def __init__(self) -> None:
        import joblib

        self.metadata = json.loads((MODEL_DIR / "metadata.json").read_text())
        self.features = [f["name"] for f in self.metadata.get("features", [])]
        # What model.predict expects (control_plane/ml records it as features[].input_dtype).
        self.dtypes = {f["name"]: f["input_dtype"] for f in self.metadata.get("features", []) if f.get("input_dtype")}
        self.model = joblib.load(MODEL_DIR / "model.joblib")

    def _error(self, ctx: bentoml.Context, status: int, message: str) -> dict:
        ctx.response.status_code = status
        return {"error": message}

    @bentoml.api(route="/predict")
    def predict(self, instances: list[dict], ctx: bentoml.Context) -> dict:
        if not instances:
            return {"predictions": []}
        missing: set[str] = set()
        for row in instances:
            missing.update(f for f in self.features if f not in row)
        if missing:
            return self._error(ctx, 400, "instances are missing feature column(s): " + ", ".join(sorted(missing))
                               + f" (expected: {', '.join(self.features)})")
        import pandas as pd

        try:
            frame = pd.DataFrame.from_records(instances, columns=self.features or None)
            if self.dtypes:
                frame = frame.astype(self.dtypes)
            predictions = self.model.predict(frame)
        except (ValueError, TypeError, KeyError) as exc:
            return self._error(ctx, 400, f"the model could not score these instances: {exc}")
        return {"predictions": to_json(predictions)}
