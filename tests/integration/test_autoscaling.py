"""Autoscaling, live on loopback: a service with `scaling = reactive` gets a second replica when a
bounded load generator raises its arrivals, within a bounded time; bad scaling is refused.
Real control plane, node daemon and bentoml."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import grpc
import pandas as pd
import pytest

from stratum.v1 import datasets_pb2 as ds, models_pb2 as m
from tests.harness import ControlPlane, NodeDaemon, wait_for
from tests.lifecycle import DATA, model_spec, rows_of, upload, wait_service, wait_trained

pytestmark = pytest.mark.timeout(500)


def test_a_load_step_scales_a_reactive_service_out_within_bounds(tmp_path):
    plane = ControlPlane(str(tmp_path), extra=["--autoscale-interval", "1s", "--training-workers", "2"]).start()
    node = NodeDaemon(str(tmp_path), "edge-1", plane.endpoint, plane.join_token, tier="edge").start()
    stop = threading.Event()
    try:
        c = plane.client()
        wait_for(lambda: c.nodes().get("edge-1") and c.nodes()["edge-1"].state == "ready", 30, what="node ready")
        blob = upload(c, (DATA / "traffic.csv").read_bytes())
        c.CreateDataset(ds.DatasetSpec(name="traffic", source="file://traffic.csv", blob_sha256=blob, target="congestion"))
        spec = model_spec("scaled", "traffic")
        del spec.candidates[1:]
        spec.grids.clear()
        c.CreateModel(spec)
        version = wait_trained(c, "scaled").serving.version

        for bad, field in ((m.Scaling(mode="magic"), "scaling.mode"), (m.Scaling(mode="reactive", min=3, max=2), "scaling.max")):
            with pytest.raises(grpc.RpcError) as e:
                c.CreateService(m.ServiceSpec(name="bad", model="scaled", scaling=bad))
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in e.value.details()

        # one replica takes 60 requests a minute; the load below is about 180 a minute
        c.CreateService(m.ServiceSpec(name="scaled", model="scaled", replicas=1, requirements=m.Requirements(memory_mb=300),
                                      placement=m.PlacementPreferences(pack=True),
                                      scaling=m.Scaling(mode="reactive", min=1, max=2, target_rpm=60)))
        svc = wait_service(c, "scaled", version)
        assert svc.replicas == 1
        body = json.dumps({"instances": rows_of(pd.read_csv(DATA / "traffic.csv"), 2)}).encode()
        answered = [0]

        def load():
            while not stop.is_set():  # ~3 requests a second, bounded by the test's own wait
                req = urllib.request.Request(svc.endpoints[0] + "/predict", data=body,
                                             headers={"content-type": "application/json"})
                with urllib.request.urlopen(req, timeout=10) as r:
                    r.read()
                answered[0] += 1
                time.sleep(0.33)

        t = threading.Thread(target=load, daemon=True)
        t0 = time.monotonic()
        t.start()
        # the first full minute of load ends, the node reports it, the autoscaler acts: 2 replicas
        wait_for(lambda: c.GetService(m.GetServiceRequest(name="scaled")).replicas == 2, 150, interval=1,
                 what="scaled out to 2 replicas")
        scaled_after = time.monotonic() - t0
        svc = wait_service(c, "scaled", version)
        assert sum(p.ready_replicas for p in svc.placements) == 2
        assert "last minute" in svc.scaling_reason and "needs 2" in svc.scaling_reason, svc.scaling_reason
        assert scaled_after <= 140  # within one minute boundary, a report and a tick of the load starting
        assert answered[0] > 0
    finally:
        stop.set()
        node.stop()
        plane.stop()
