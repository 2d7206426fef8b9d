"""Request placement ("straightline" routing) over the real API, with real processes: a control plane,
two node daemons (one edge, one fog) and a `bentoml serve` replica on each.

The control plane sends each node's router a RoutingPlan: an edge form (the replica on the node,
with a max input size worked out from the latency objective and the packaging profile), an
always_on form (the other node's router, once that node has reported its endpoint) and an
on_demand form. The router says where a placed POST /predict went in `x-stratum-form`.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pandas as pd
import psutil
import pytest

from control_plane.ml import inference
from stratum.v1 import datasets_pb2 as ds, models_pb2 as m
from tests.harness import ControlPlane, NodeDaemon, wait_for
from tests.lifecycle import DATA, model_spec, rows_of, upload, wait_service, wait_trained

pytestmark = pytest.mark.timeout(300)

EDGE, FOG = "edge-a", "fog-b"


@pytest.fixture
def cluster(tmp_path):
    cp = ControlPlane(str(tmp_path), extra=["--training-workers", "2"]).start()
    nodes = {EDGE: NodeDaemon(str(tmp_path), EDGE, cp.endpoint, cp.join_token, tier="edge").start(),
             FOG: NodeDaemon(str(tmp_path), FOG, cp.endpoint, cp.join_token, tier="fog").start()}
    c = cp.client()
    wait_for(lambda: (lambda ns: len(ns) == 2 and all(n.state == "ready" for n in ns.values()))(c.nodes()), 30,
             what="both nodes ready")
    yield cp, nodes, c
    c.close()
    for node in nodes.values():
        node.stop()
    cp.stop()


def post(endpoint: str, rows: list[dict], stream: str) -> tuple[int, str | None, list]:
    """POST /predict on one stream: (status, x-stratum-form, predictions)."""
    req = urllib.request.Request(endpoint + "/predict", data=body_of(rows),
                                 headers={"content-type": "application/json", "x-stratum-stream": stream})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("x-stratum-form"), json.loads(r.read())["predictions"]
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("x-stratum-form"), [e.read().decode(errors="replace")]


def _code(call) -> grpc.StatusCode | None:
    try:
        call()
    except grpc.RpcError as e:
        return e.code()
    return None


def _rejected(c, spec: m.ServiceSpec, field: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        c.CreateService(spec)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in err.value.details(), err.value.details()
    assert _code(lambda: c.GetService(m.GetServiceRequest(name=spec.name))) == grpc.StatusCode.NOT_FOUND


def _bentoml_pids(nodes) -> list[int]:
    out = []
    for node in nodes.values():
        for p in psutil.Process(node.proc.pid).children(recursive=True):
            try:
                if "bentoml" in " ".join(p.cmdline()):
                    out.append(p.pid)
            except psutil.NoSuchProcess:
                pass
    return out


def test_straightline_places_requests_by_size_and_distribution_across_edge_and_fog(cluster):
    cp, nodes, c = cluster
    assert {n.name: n.tier for n in c.nodes().values()} == {EDGE: "edge", FOG: "fog"}

    # The smallest model the lifecycle tests train: one candidate, no grid.
    base = pd.read_csv(DATA / "traffic.csv")
    blob = upload(c, (DATA / "traffic.csv").read_bytes())
    c.CreateDataset(ds.DatasetSpec(name="traffic", source="file://traffic.csv", blob_sha256=blob, target="congestion"))
    spec = model_spec("placed", "traffic")
    del spec.candidates[1:]
    spec.grids.clear()
    c.CreateModel(spec)
    v = wait_trained(c, "placed").serving
    assert v.p95_ms > 0 and v.ms_per_kib > 0 and v.capacity_rps > 0, v  # the packaging profile placement works from
    local, meta = inference.load(str(Path(cp.data_dir) / "models" / "placed" / v.version))

    # Bad routing is refused with the field path, and nothing is created.
    _rejected(c, m.ServiceSpec(name="bad-mode", model="placed", routing=m.Routing(mode="fastest")), "routing.mode")
    _rejected(c, m.ServiceSpec(name="bad-od", model="placed", routing=m.Routing(mode="local", on_demand_replicas=1)),
              "routing.on_demand_replicas")

    # An objective a little above the measured p95, so the edge form's max input is a few KiB at least
    # and small enough that a modest batch is above it: max = (slo - p95) / ms_per_kib * 1024 bytes.
    slo = v.p95_ms + max(v.p95_ms, 4 * v.ms_per_kib)
    edge_max = int((slo - v.p95_ms) / v.ms_per_kib * 1024)
    c.CreateService(m.ServiceSpec(name="placed", model="placed", replicas=2, slo=m.Slo(p95_latency_ms=slo),
                                  routing=m.Routing(mode="straightline", on_demand_replicas=1, idle_stop_s=5)))
    try:
        svc = wait_service(c, "placed", v.version)
        ends = {p.node_name: p.endpoint for p in svc.placements}
        assert sorted(ends) == [EDGE, FOG] and all(p.replicas == 1 for p in svc.placements), svc  # spread: one per node
        a, b = ends[EDGE], ends[FOG]

        # 1. Small requests are served by the replica on the node they reach: the edge form.
        small = rows_of(base, 3)
        assert len(body_of(small)) < edge_max
        want = inference.predict(local, meta, small)
        for endpoint in (a, b):
            assert wait_for(lambda: post(endpoint, small, "small") == (200, "edge", want), 30, interval=0.2,
                            what=f"small request answered by the edge form at {endpoint}")

        # 3. A stream of out-of-distribution inputs (far outside the training range) goes to the full model
        # on the other node once its router is a peer (the plan gets the peer after the fog node reported
        # its endpoint; until then the stream stays on the edge form).
        ood = [dict(r, vehicles_per_min=float(base["vehicles_per_min"].max()) * 50 + 1000) for r in rows_of(base, 2)]
        want_ood = inference.predict(local, meta, ood)
        seen = []

        def ood_goes_always_on():
            status, form, preds = post(a, ood, "ood")
            seen.append(form)
            assert status == 200 and preds == want_ood, (status, form, preds)
            return form == "always_on"

        wait_for(ood_goes_always_on, 60, interval=0.3, what="an out-of-distribution stream placed on always_on")
        assert set(seen) <= {"edge", "always_on"}, seen
        # The fog node's replica served it (its access log has the body's length), not the edge node's.
        n_ood = len(body_of(ood))
        wait_for(lambda: _logged(nodes[FOG], n_ood) == seen.count("always_on"), 10,
                 what="the fog replica served the ood stream")
        wait_for(lambda: _logged(nodes[EDGE], n_ood) == seen.count("edge"), 10, what="the edge replica served the rest")
        # In-distribution inputs on another stream still stay on the edge.
        assert post(a, small, "small") == (200, "edge", want)

        # 2. A body larger than the edge form's max input goes to the fog node's replica (always_on).
        row_bytes = len(json.dumps(small[0])) + 2
        big = rows_of(base, len(base))
        n = math.ceil(2 * edge_max / row_bytes) + 1
        big = (big * (n // len(big) + 1))[:n]
        n_big = len(body_of(big))
        assert n_big > edge_max
        status, form, preds = post(a, big, "big")
        assert (status, form) == (200, "always_on"), (status, form, preds[:1], slo, edge_max, n_big)
        assert preds == inference.predict(local, meta, big)
        wait_for(lambda: _logged(nodes[FOG], n_big) == 1, 10, what="the fog replica served the big request")
        assert _logged(nodes[EDGE], n_big) == 0
        # The same body at the fog node is too big for its edge form too: it goes to the edge node's replica.
        status, form, _ = post(b, big, "big")
        assert (status, form) == (200, "always_on")
        wait_for(lambda: _logged(nodes[EDGE], n_big) == 1, 10, what="the edge replica served the big request from fog")
        assert _logged(nodes[FOG], n_big) == 1
    finally:
        pids = _bentoml_pids(nodes)
        c.DeleteService(m.DeleteServiceRequest(name="placed"))
        wait_for(lambda: _code(lambda: c.GetService(m.GetServiceRequest(name="placed"))) == grpc.StatusCode.NOT_FOUND,
                 60, what="service gone")
        wait_for(lambda: not any(psutil.pid_exists(p) for p in pids), 30, what="replica processes gone")
        assert not _bentoml_pids(nodes)


def body_of(rows: list[dict]) -> bytes:
    return json.dumps({"instances": rows}).encode()


def _logged(node: NodeDaemon, length: int) -> int:
    """POST /predict requests of `length` bytes in the access logs of a node's replicas (BentoML's)."""
    line = f"method=POST,path=/predict,type=application/json,length={length})"
    return sum(p.read_text(errors="replace").count(line) for p in Path(node.data_dir, "replicas").glob("*.log"))
