"""training.engine = "dask" with real processes: a control plane whose training job runs the dask
scheduler, node daemons on hosts of their own (network namespaces) that run the workers, the
same version as a local training even when a worker node is lost mid-training, and the plan-time
error when no node matches training.workers."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import grpc
import psutil
import pytest

from stratum.v1 import control_plane_pb2 as cp, datasets_pb2 as ds, models_pb2 as m
from tests.control_plane.test_api import violations
from tests.harness import ControlPlane, NodeDaemon, wait_for
from tests.lifecycle import DATA, model_spec, upload, wait_trained

pytestmark = pytest.mark.timeout(600)

TRAIN_ON = m.TrainingWorkers(tiers=["cloud"], labels={"pool": "train"})


def heavy_spec(name: str, **kw) -> m.ModelSpec:
    """Enough folds (5 grid points x 5 folds) to still be running when a node is killed."""
    spec = model_spec(name, "traffic", **kw)
    spec.selection.cv_folds = 5
    spec.grids["random_forest"].Clear()
    spec.grids["random_forest"].update({"n_estimators": [100, 200], "max_depth": [8, 12]})
    return spec


def worker_pids(node: NodeDaemon) -> dict[str, int]:
    """training -> pid of the dask worker program the node runs for it (its pid files)."""
    out = {}
    for f in Path(node.data_dir, "dask").glob("*.pid"):
        out[f.stem] = int(f.read_text().split()[0])
    return out


def family(pid: int) -> list[int]:
    try:
        p = psutil.Process(pid)
        return [pid, *(c.pid for c in p.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.netns
def test_dask_training_gives_the_local_version_and_survives_a_lost_node(tmp_path, test_network):
    plane = ControlPlane(str(tmp_path), host=test_network.gateway, extra=["--training-workers", "2"]).start()
    nodes = {}
    try:
        for name, tier, labels in (("train-a", "cloud", {"pool": "train"}), ("train-b", "cloud", {"pool": "train"}),
                                   ("edge-1", "edge", {"pool": "train"})):
            nodes[name] = NodeDaemon(str(tmp_path), name, plane.endpoint, plane.join_token, tier=tier, labels=labels,
                                     netns=test_network.add_host().netns).start()
        c = plane.client()
        wait_for(lambda: sorted(n.name for n in c.nodes().values() if n.state == "ready") == sorted(nodes), 60,
                 what="three namespace nodes ready")
        c.CreateDataset(ds.DatasetSpec(name="traffic", source="file://traffic.csv", target="congestion",
                                       blob_sha256=upload(c, (DATA / "traffic.csv").read_bytes())))

        local = c.CreateModel(heavy_spec("local"))
        assert local.spec.training == m.Training()
        local = wait_trained(c, "local", timeout=400).serving

        created = c.CreateModel(heavy_spec("spread", training=m.Training(engine="dask", workers=TRAIN_ON)))
        op_id = created.operation.id
        assert created.spec.training.engine == "dask" and created.spec.training.workers == TRAIN_ON
        # Both cloud nodes start a worker for this training, and connect it to the job's scheduler.
        victim, survivor = nodes["train-a"], nodes["train-b"]
        log = Path(victim.data_dir, "dask", op_id, "worker.log")
        wait_for(lambda: op_id in worker_pids(survivor) and log.exists() and "Registered to" in log.read_text(), 120,
                 what="train-a's dask workers registered with the scheduler")
        op = wait_for(lambda: (lambda o: o if o.done >= 3 else None)(c.GetOperation(m.GetOperationRequest(id=op_id))),
                      240, interval=0.1, what="folds done")
        assert op.state == "running" and op.done < op.total, op  # still under way: the kill is mid-training

        # The node is lost, abruptly: its daemon and its worker processes die with SIGKILL.
        doomed = family(worker_pids(victim)[op_id])
        assert len(doomed) >= 2  # the worker program and its worker processes
        os.killpg(doomed[0], signal.SIGKILL)
        victim.kill()
        wait_for(lambda: not any(psutil.pid_exists(p) for p in doomed), 30, what="train-a's workers gone")

        spread = wait_trained(c, "spread", timeout=400)
        assert spread.operation.id == op_id and spread.operation.state == "succeeded"
        assert spread.operation.done == spread.operation.total
        v = spread.serving
        assert (v.version, v.artifact_digest, v.best_algorithm) == (local.version, local.artifact_digest, local.best_algorithm)
        assert list(v.leaderboard) == list(local.leaderboard) and len(v.leaderboard) == 5

        # The training over, the survivor stops its worker; the edge node (not in the tiers) never ran one.
        wait_for(lambda: not worker_pids(survivor) and not (Path(survivor.data_dir) / "dask" / op_id).exists(), 60,
                 what="the survivor's dask worker stopped")
        assert "dask worker stopped" in survivor.log()
        assert "dask worker started" not in nodes["edge-1"].log()
        assert not Path(nodes["edge-1"].data_dir, "dask", op_id).exists()
        c.close()
    finally:
        for n in nodes.values():
            n.stop()
        plane.stop()


def test_no_matching_worker_is_a_plan_time_error(control_plane, start_node, tmp_path):
    c = control_plane.client()
    start_node("fog-1", tier="fog", labels={"zone": "north"})
    start_node("fog-2", tier="fog", labels={"zone": "south"})
    wait_for(lambda: sum(n.state == "ready" for n in c.nodes().values()) == 2, 60, what="nodes ready")
    c.CreateDataset(ds.DatasetSpec(name="traffic", source="file://traffic.csv", target="congestion",
                                   blob_sha256=upload(c, (DATA / "traffic.csv").read_bytes())))

    def refused(call, workers: m.TrainingWorkers, engine: str = "dask") -> dict[str, str]:
        with pytest.raises(grpc.RpcError) as e:
            call(model_spec("spread", "traffic", training=m.Training(engine=engine, workers=workers)))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
        return violations(e.value)

    # No node in the tier: plan time says so, naming the nodes and why each does not match.
    bad = refused(c.ValidateModel, m.TrainingWorkers(tiers=["cloud"]))
    assert list(bad) == ["training.workers"]
    assert 'no ready node matches tiers = ["cloud"]' in bad["training.workers"]
    assert "fog-1: tier fog" in bad["training.workers"] and "fog-2: tier fog" in bad["training.workers"]
    # The right tier, a label no node has with that value.
    bad = refused(c.ValidateModel, m.TrainingWorkers(tiers=["fog"], labels={"zone": "east"}))
    assert "fog-1: label zone=north" in bad["training.workers"] and "fog-2: label zone=south" in bad["training.workers"]
    # Create checks the same: nothing is created, nothing trains.
    bad = refused(c.CreateModel, m.TrainingWorkers(labels={"zone": "east"}))
    assert list(bad) == ["training.workers"]
    assert not c.ListModels(cp.ListModelsRequest()).models
    # Spec mistakes are named too, without looking at nodes.
    assert list(refused(c.ValidateModel, m.TrainingWorkers(), engine="spark")) == ["training.engine"]
    assert list(refused(c.ValidateModel, m.TrainingWorkers(tiers=["fog"]), engine="local")) == ["training.workers"]
    assert list(refused(c.ValidateModel, m.TrainingWorkers(tiers=["sky"]))) == ["training.workers.tiers[0]"]

    # A node that matches: the check passes; drained, it no longer counts.
    c.ValidateModel(model_spec("spread", "traffic", training=m.Training(engine="dask", workers=m.TrainingWorkers(
        tiers=["fog"], labels={"zone": "north"}))))
    c.DrainNode(cp.DrainNodeRequest(id_or_name="fog-1", drain=True))
    bad = refused(c.ValidateModel, m.TrainingWorkers(tiers=["fog"], labels={"zone": "north"}))
    assert "fog-1: drained" in bad["training.workers"]
    c.close()
