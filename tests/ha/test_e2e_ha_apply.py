"""`terraform apply` of the smart-traffic pipeline against two control planes on one PostgreSQL,
the leader killed with SIGKILL in the middle of it (while the model trains): the provider goes on
with the other control plane (STRATUM_ENDPOINT lists both), the new leader resumes the training,
and the apply completes, or fails cleanly and completes when run again. Afterwards nothing is
doubled (one model version, each app's instances once, one process each), the plan is empty, and
a provider block with `endpoints` whose first control plane is dead still plans."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import psutil
import pytest

from stratum.v1 import apps_pb2 as a, control_plane_pb2 as cp, models_pb2 as m
from tests.ha.test_ha import Cluster
from tests.harness import NodeDaemon, wait_for
from tests.provider.tfharness import Workspace

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.timeout(900)]

EXAMPLE = Path(__file__).resolve().parents[2] / "modules" / "examples" / "smart-traffic"
EXPECTED = {"broker": 1, "processor": 1, "sensors": 2, "dashboard": 1, "aggregate": 1}


def app_processes(nodes, script: str) -> list[psutil.Process]:
    out = []
    for n in nodes:
        for pr in psutil.process_iter(["cwd", "cmdline"]):
            try:
                if (pr.info["cwd"] or "").startswith(os.path.join(n.data_dir, "apps")) and script in " ".join(pr.info["cmdline"] or []):
                    out.append(pr)
            except psutil.Error:
                pass
    return out


def test_the_leader_killed_during_apply_loses_and_doubles_nothing(tmp_path, postgres_url, provider_home):
    cluster = Cluster(str(tmp_path), postgres_url)
    nodes = []
    try:
        servers = cluster.servers()
        for name, tier in (("edge-1", "edge"), ("fog-1", "fog"), ("cloud-1", "cloud")):
            nodes.append(NodeDaemon(str(tmp_path), name, servers, cluster.planes[0].join_token, tier=tier).start())
        lead = cluster.leader()
        c = cluster.followers()[0].client()
        wait_for(lambda: sum(n.state == "ready" for n in c.nodes().values()) == 3, 60, what="three nodes ready")

        ws = Workspace(tmp_path / "tf", provider_home, {"STRATUM_ENDPOINT": servers, "STRATUM_TOKEN": lead.admin_token,
                                                         "STRATUM_CA_CERT": lead.ca_pem_path})
        shutil.copy(EXAMPLE / "main.tf", ws.dir / "main.tf")
        shutil.copytree(EXAMPLE / "apps", ws.dir / "apps", ignore=shutil.ignore_patterns("__pycache__"))
        (ws.dir / "data").mkdir()
        shutil.copy(EXAMPLE / "data" / "traffic.csv", ws.dir / "data" / "traffic.csv")
        (ws.dir / "e2e.auto.tfvars").write_text("broker_port = 0\n")
        ws.init()

        result: dict = {}
        first = threading.Thread(target=lambda: result.update(r=ws.apply(check=False)))
        first.start()
        wait_for(lambda: any(x.spec.name == "congestion" and x.operation.state == "running"
                             for x in c.ListModels(cp.ListModelsRequest()).models), 240, interval=0.2,
                 what="the model training (the apply half done)")
        lead.kill()
        first.join(600)
        r = result["r"]
        (tmp_path / "first-apply.txt").write_text(r.output)
        if r.rc != 0:  # a clean failure says what, and a second apply finishes the job
            assert "Error" in r.output and "Traceback" not in r.output, r.output[-3000:]
            second = ws.apply(check=False)
            (tmp_path / "second-apply.txt").write_text(second.output)
            assert second.rc == 0, second.output[-3000:]
        cluster.restart(cluster.planes.index(lead))  # back, as a follower
        assert ws.plan().rc == 0  # nothing left to do

        new = cluster.leader()
        n = new.client()
        model = n.GetModel(m.GetModelRequest(name="congestion"))
        assert model.state == "ready" and len(model.versions) == 1, model  # trained once (resumed, not doubled)
        for name, count in EXPECTED.items():
            app = n.GetApp(a.GetAppRequest(name=name))
            assert sorted(i.index for i in app.instances) == list(range(count)), (name, app.instances)
        svc = n.GetService(m.GetServiceRequest(name="congestion"))
        assert svc.state == "ready" and sum(p.replicas for p in svc.placements) == 1
        wait_for(lambda: len(app_processes(nodes, "sensor.py")) == 2, 60, what="two sensor processes")
        assert len(app_processes(nodes, "processor.py")) == 1 and len(app_processes(nodes, "mosquitto")) == 1

        # A provider block listing the control planes, the first of them gone: it plans with the other.
        victim = next(p for p in cluster.planes if p is not new)
        victim.stop()
        alone = Workspace(tmp_path / "tf-endpoints", provider_home, {"STRATUM_TOKEN": lead.admin_token})
        (alone.dir / "main.tf").write_text(
            'terraform {\n  required_providers {\n    stratum = { source = "stratum/stratum" }\n  }\n}\n\n'
            f'provider "stratum" {{\n  endpoints = ["{victim.endpoint}", "{new.endpoint}"]\n'
            f'  ca_cert   = "{lead.ca_pem_path}"\n}}\n\n'
            'data "stratum_nodes" "all" {}\n\noutput "count" {\n  value = length(data.stratum_nodes.all.nodes)\n}\n')
        alone.apply()
        assert alone.outputs()["count"] == 3

        ws.destroy()
        n.close()
        c.close()
    finally:
        for node in nodes:
            node.stop()
        cluster.stop()
