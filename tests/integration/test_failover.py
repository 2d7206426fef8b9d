"""A node of a two-replica service goes down (its host's link is cut): the control plane moves
its replica to another node while a request loop, holding the service's endpoints, keeps getting
answers. Three hosts in network namespaces, real control plane, node daemons and bentoml."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest

from stratum.v1 import datasets_pb2 as ds, models_pb2 as m
from tests.harness import ControlPlane, NodeDaemon, wait_for
from tests.lifecycle import DATA, model_spec, rows_of, upload, wait_service, wait_trained

pytestmark = [pytest.mark.netns, pytest.mark.timeout(600)]


def post(endpoint: str, rows: list[dict], timeout: float = 2.0) -> list:
    req = urllib.request.Request(endpoint + "/predict", data=json.dumps({"instances": rows}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())["predictions"]


def test_replicas_move_off_a_lost_node_and_the_service_keeps_answering(tmp_path, test_network):
    import pandas as pd

    hosts = [test_network.add_host() for _ in range(3)]
    plane = ControlPlane(str(tmp_path), host=test_network.gateway).start()
    nodes = []
    try:
        for i, h in enumerate(hosts):
            nodes.append(NodeDaemon(str(tmp_path), f"edge-{i}", plane.endpoint, plane.join_token, tier="edge", netns=h.netns,
                                    extra=["--serve-host", h.address]).start())
        c = plane.client()
        wait_for(lambda: sum(n.state == "ready" for n in c.nodes().values()) == 3, 60, what="three nodes ready")
        blob = upload(c, (DATA / "traffic.csv").read_bytes())
        c.CreateDataset(ds.DatasetSpec(name="traffic", source="file://traffic.csv", blob_sha256=blob, target="congestion"))
        spec = model_spec("congestion", "traffic")
        del spec.candidates[1:]
        spec.grids.clear()
        c.CreateModel(spec)
        version = wait_trained(c, "congestion").serving.version
        c.CreateService(m.ServiceSpec(name="congestion", model="congestion", replicas=2,
                                      requirements=m.Requirements(memory_mb=300)))
        svc = wait_service(c, "congestion", version)
        placed = {p.node_name for p in svc.placements}
        assert len(placed) == 2 and all(p.replicas == 1 for p in svc.placements)  # spread for availability
        assert {e.split("//")[1].split(":")[0] for e in svc.endpoints} <= {h.address for h in hosts}

        rows = rows_of(pd.read_csv(DATA / "traffic.csv"), 5)
        endpoints = list(svc.endpoints)
        failures, answered, stop = [], [0], threading.Event()

        def loop():
            # A client holding every endpoint of the service: one answering is enough, and one that
            # failed goes to the back of its list (as an HTTP client with several upstreams does).
            while not stop.is_set():
                for e in list(endpoints):
                    try:
                        post(e, rows)
                        answered[0] += 1
                        break
                    except Exception:  # noqa: BLE001 - try the next endpoint
                        if e in endpoints:
                            endpoints.remove(e)
                            endpoints.append(e)
                else:
                    failures.append(time.monotonic())
                time.sleep(0.05)

        t = threading.Thread(target=loop, daemon=True)
        t.start()
        lost = sorted(placed)[0]
        lost_host = hosts[int(lost.split("-")[1])]
        spare = ({f"edge-{i}" for i in range(3)} - placed).pop()
        try:
            lost_host.link_down()
            wait_for(lambda: c.nodes()[lost].state == "down", 30, what="lost node marked down")
            moved = wait_for(lambda: (lambda s: s if {p.node_name for p in s.placements} == placed - {lost} | {spare}
                                      and s.state == "ready" else None)(c.GetService(m.GetServiceRequest(name="congestion"))),
                             180, interval=0.5, what="replica moved to the spare node")
            endpoints[:] = list(moved.endpoints)
            time.sleep(2)
        finally:
            stop.set()
            t.join(30)
        assert not failures and answered[0] > 20, (len(failures), answered[0])
        lost_host.link_up()
    finally:
        for n in nodes:
            n.stop()
        plane.stop()
