"""Per-minute service metrics, end to end: the node's endpoint counts requests, latencies and
queue depth per wall-clock minute, reports each ended minute once, and the control plane serves
them over gRPC (GetServiceMetrics) and to Prometheus (/metrics). Real processes and bentoml."""

from __future__ import annotations

import json
import time
import urllib.request

import grpc
import pandas as pd
import pytest

from stratum.v1 import datasets_pb2 as ds, models_pb2 as m
from tests.harness import ControlPlane, NodeDaemon, free_port, wait_for
from tests.lifecycle import DATA, model_spec, rows_of, upload, wait_service, wait_trained

pytestmark = pytest.mark.timeout(400)


MINUTE = 6


def test_requests_show_up_per_minute_in_grpc_and_prometheus(tmp_path):
    mport = free_port()
    env = {"STRATUM_MINUTE_S": str(MINUTE)}  # minutes of a few seconds: the test waits for one to end
    plane = ControlPlane(str(tmp_path), extra=["--metrics-listen", f"127.0.0.1:{mport}"], env=env).start()
    node = NodeDaemon(str(tmp_path), "edge-1", plane.endpoint, plane.join_token, tier="edge", env=env).start()
    try:
        c = plane.client()
        wait_for(lambda: c.nodes().get("edge-1") and c.nodes()["edge-1"].state == "ready", 30, what="node ready")
        blob = upload(c, (DATA / "traffic.csv").read_bytes())
        c.CreateDataset(ds.DatasetSpec(name="traffic", source="file://traffic.csv", blob_sha256=blob, target="congestion"))
        spec = model_spec("metered", "traffic")
        del spec.candidates[1:]
        spec.grids.clear()
        c.CreateModel(spec)
        version = wait_trained(c, "metered").serving.version
        c.CreateService(m.ServiceSpec(name="metered", model="metered"))
        endpoint = wait_service(c, "metered", version).endpoints[0]

        with pytest.raises(grpc.RpcError) as e:
            c.GetServiceMetrics(m.GetServiceMetricsRequest(name="nope"))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as e:
            c.GetServiceMetrics(m.GetServiceMetricsRequest(name="metered", minutes=-1))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "minutes" in e.value.details()

        rows = rows_of(pd.read_csv(DATA / "traffic.csv"), 4)
        body = json.dumps({"instances": rows}).encode()
        sent = 0
        for _ in range(25):
            req = urllib.request.Request(endpoint + "/predict", data=body, headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                r.read()
            sent += 1
        bad = urllib.request.Request(endpoint + "/predict", data=b'{"instances": [{"nope": 1}]}',
                                     headers={"content-type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(bad, timeout=10)
        assert err.value.code == 400  # a client error: counted, not a failure
        sent += 1

        # The minute ends, the node reports it: every request counted once.
        def points():
            pts = c.GetServiceMetrics(m.GetServiceMetricsRequest(name="metered")).points
            return pts if sum(p.requests for p in pts) >= sent else None

        pts = wait_for(points, 90, interval=1, what="the requests' minute reported")
        assert sum(p.requests for p in pts) == sent and sum(p.failures for p in pts) == 0
        assert all(p.minute <= time.time() // MINUTE for p in pts)
        busiest = max(pts, key=lambda p: p.requests)
        assert 0 < busiest.p50_ms <= busiest.p95_ms <= busiest.p99_ms and busiest.max_in_flight >= 1

        text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10).read().decode()
        assert f'stratum_service_requests_total{{service="metered"}} {float(sent)}' in text, text
        assert 'stratum_service_failures_total{service="metered"} 0.0' in text
        assert f'stratum_service_request_duration_seconds_count{{service="metered"}} {float(sent)}' in text
        c.DeleteService(m.DeleteServiceRequest(name="metered"))
        wait_for(lambda: "metered" not in urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10)
                 .read().decode(), 60, what="series forgotten with the service")
    finally:
        node.stop()
        plane.stop()
