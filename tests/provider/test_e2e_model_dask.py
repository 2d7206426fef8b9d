"""stratum_model's `training` with real terraform, a real control plane and a real node daemon:
no matching node fails the plan on training.workers; engine = "dask" trains the same version as
a local training; import gives the configured arguments back (empty plan); changing `training`
trains nothing."""

from __future__ import annotations

import shutil

import pytest

from stratum.v1 import models_pb2 as m
from tests.harness import NodeDaemon, wait_for
from tests.lifecycle import DATA
from tests.provider.tfharness import Step, run_steps

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

DATASET = '''resource "stratum_dataset" "traffic" {
  name   = "traffic"
  source = "file://data/traffic.csv"
  target = "congestion"
}
'''


def model(name: str, training: str = "") -> str:
    return f'''resource "stratum_model" "{name}" {{
  name       = "{name}"
  dataset    = stratum_dataset.traffic.id
  task       = "classification"
  candidates = ["logistic_regression", "random_forest"]
  grids = {{
    random_forest = jsonencode({{ n_estimators = [20], max_depth = [8] }})
  }}
  preprocessing = {{
    impute  = "median"
    one_hot = ["intersection", "weather"]
  }}
  selection = {{
    cv_folds = 3
  }}
{training}}}
'''


DASK = '''  training = {
    engine  = "dask"
    workers = { tiers = ["cloud"], labels = { pool = "train" } }
  }
'''


@pytest.fixture
def node(tmp_path, control_plane):
    n = NodeDaemon(str(tmp_path), "cloud-1", control_plane.endpoint, control_plane.join_token, tier="cloud",
                   labels={"pool": "train"}).start()
    c = control_plane.client()
    wait_for(lambda: (c.nodes().get("cloud-1") or None) and c.nodes()["cloud-1"].state == "ready", 30, what="node ready")
    c.close()
    yield n
    n.stop()


def test_dask_training_plan_apply_import_and_switch_back(ws, admin, node):
    (ws.dir / "data").mkdir(parents=True)
    shutil.copy(DATA / "traffic.csv", ws.dir / "data" / "traffic.csv")
    base = ws.provider + DATASET + model("local")
    fog_only = DASK.replace('tiers = ["cloud"]', 'tiers = ["fog"]')
    bad_engine = '  training = {\n    engine = "spark"\n  }\n'

    def same_version(ws):
        r = ws.resources()
        local, spread = r["stratum_model.local"], r["stratum_model.spread"]
        assert spread["training"] == {"engine": "dask", "workers": {"tiers": ["cloud"], "labels": {"pool": "train"}}}
        assert local["training"] is None
        assert (spread["version"], spread["artifact_digest"]) == (local["version"], local["artifact_digest"])
        assert spread["leaderboard"] == local["leaderboard"]
        server = admin.GetModel(m.GetModelRequest(name="spread"))
        assert server.spec.training.engine == "dask" and list(server.spec.training.workers.tiers) == ["cloud"]
        assert "dask worker started" in node.log()

    run_steps(ws, [
        # plan-time errors, on the attribute
        Step(base + model("spread", fog_only), plan_only=True,
             expect_error=["training.workers", 'no ready node matches tiers = ["fog"]', "cloud-1: tier cloud"]),
        Step(base + model("spread", bad_engine), plan_only=True, expect_error=["training.engine", "unknown engine"]),
        Step(base + model("spread", DASK), check=same_version, import_address="stratum_model.spread", import_id="spread"),
    ])
    assert not admin.GetModel(m.GetModelRequest(name="spread")).error

    # Where it trains is not what it trains: back to local is an in-place update that trains nothing.
    before = admin.GetModel(m.GetModelRequest(name="spread"))
    ws.write(base + model("spread"))
    res = ws.plan()
    assert res.rc == 2 and "stratum_model.spread will be updated in-place" in res.stdout, res.stdout
    assert "known after apply" not in res.stdout.split("stratum_model.spread will be updated in-place")[1]
    ws.apply()
    after = admin.GetModel(m.GetModelRequest(name="spread"))
    assert after.operation.id == before.operation.id and after.serving.version == before.serving.version
    assert not after.spec.training.engine and not after.spec.training.workers.tiers
    assert ws.plan().rc == 0
    ws.destroy()
