"""Fixtures for packaging and replica tests: a tiny real model artifact and real bentos built from it.

Everything here is real: scikit-learn, `bentoml build/export/import/serve`.  The bentos are built
once per session (a build is a few seconds) and shared."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

FEATURES = [{"name": "speed", "type": "float", "input_dtype": "float64"},
            {"name": "count", "type": "integer", "input_dtype": "float64"},
            {"name": "zone", "type": "string", "input_dtype": "str"}]


def make_artifact(out: Path, seed: int = 0, algorithm: str = "logistic_regression") -> Path:
    """A model artifact as control_plane/ml writes one: model.joblib (a fitted Pipeline on a DataFrame)
    and metadata.json."""
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(seed)
    n = 300
    df = pd.DataFrame({"speed": rng.normal(50, 15, n), "count": rng.integers(0, 100, n).astype("float64"),
                       "zone": rng.choice(["north", "south", "east"], n)})
    y = np.where(df["speed"] - 0.2 * df["count"] + np.where(df["zone"] == "north", -8, 0) < 35, "congested", "free")
    clf = LogisticRegression() if algorithm == "logistic_regression" else DecisionTreeClassifier(max_depth=3, random_state=seed)
    model = Pipeline([("pre", ColumnTransformer([("num", StandardScaler(), ["speed", "count"]),
                                                 ("cat", OneHotEncoder(handle_unknown="ignore"), ["zone"])])),
                      ("clf", clf)]).fit(df, y)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "model.joblib", compress=3)
    (out / "metadata.json").write_text(json.dumps({
        "format": 1, "task": "classification", "target": "state", "classes": sorted(set(y)),
        "features": FEATURES, "best": {"algorithm": algorithm}}, sort_keys=True, indent=2))
    return out


SAMPLE = [{"speed": 20.0, "count": 80, "zone": "north"}, {"speed": 75.5, "count": 3, "zone": "south"},
          {"speed": 40.0, "count": 10, "zone": "east"}, {"speed": 33.0, "count": 1, "zone": "west"}]


def local_predictions(artifact: Path, rows: list[dict]) -> list:
    import joblib
    import pandas as pd

    model = joblib.load(artifact / "model.joblib")
    frame = pd.DataFrame.from_records(rows, columns=[f["name"] for f in FEATURES]).astype(
        {f["name"]: f["input_dtype"] for f in FEATURES})
    return model.predict(frame).tolist()


@pytest.fixture(scope="session")
def pk_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("packaging")


@pytest.fixture(scope="session")
def artifact(pk_root) -> Path:
    return make_artifact(pk_root / "artifact-v1")


@pytest.fixture(scope="session")
def artifact_v2(pk_root) -> Path:
    return make_artifact(pk_root / "artifact-v2", seed=1, algorithm="decision_tree")


@pytest.fixture(scope="session")
def built(pk_root, artifact):
    """(BentoArtifact, build BENTOML_HOME) of congestion:v1."""
    from control_plane.packaging.build import build_bento

    home = pk_root / "build-home"
    return build_bento(artifact, "congestion", "v1", home, pk_root / "work"), home


@pytest.fixture(scope="session")
def built_v2(pk_root, artifact_v2):
    from control_plane.packaging.build import build_bento

    home = pk_root / "build-home"
    return build_bento(artifact_v2, "congestion", "v2", home, pk_root / "work"), home


@pytest.fixture(scope="session")
def store(pk_root, built, built_v2):
    """The control plane's ArtifactStore holding both bentos."""
    from control_plane.packaging.store import ArtifactStore

    s = ArtifactStore(pk_root / "cp-data")
    for art, _ in (built, built_v2):
        assert s.put(art.path) == art.sha256
    return s


class LoopThread:
    """An asyncio loop in a daemon thread: run coroutines from synchronous tests."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 300):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def loop_thread():
    lt = LoopThread()
    yield lt
    lt.close()
