"""Both /metrics endpoints, from real processes: a control plane and a node daemon with --metrics-listen.
Their exposition passes `promtool check metrics` (lint included) and carries the metrics we document."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stratum.v1 import control_plane_pb2 as cp
from tests.harness import ControlPlane, NodeDaemon, free_port, wait_for

pytestmark = pytest.mark.timeout(120)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def samples(text: str) -> dict[tuple, float]:
    """(name, sorted label pairs) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(text: str, name: str, **labels) -> float | None:
    want = tuple(sorted(labels.items()))
    return samples(text).get((name, want))


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH: install the Debian package 'prometheus' (scripts/setup does)"
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    # promtool exits 0 on lint findings too and prints them: any line of output is a finding.
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), \
        f"promtool check metrics (rc {done.returncode}):\n{done.stdout}{done.stderr}"


def test_control_plane_and_node_metrics_pass_promtool_and_carry_what_we_document(tmp_path):
    cp_port, node_port = free_port(), free_port()
    plane = ControlPlane(str(tmp_path), extra=["--metrics-listen", f"127.0.0.1:{cp_port}"]).start()
    node = NodeDaemon(str(tmp_path), "edge-1", plane.endpoint, plane.join_token, tier="edge",
                      extra=["--metrics-listen", f"127.0.0.1:{node_port}"]).start()
    try:
        c = plane.client()
        for _ in range(3):
            c.GetStatus()
        with pytest.raises(grpc.RpcError) as e:  # no admin token: refused by the token check, and still counted
            cp_grpc_stub(plane).GetStatus(cp.GetStatusRequest(), timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # a few heartbeats (1 s apart in tests) and their acks
        wait_for(lambda: (value(scrape(node_port), "stratum_node_heartbeat_rtt_seconds_count") or 0) >= 3, 30,
                 what="three acknowledged heartbeats in the node's metrics")

        node_text, cp_text = scrape(node_port), scrape(cp_port)
        promtool_check(cp_text)
        promtool_check(node_text)

        rpc = {"service": "stratum.v1.ControlPlane", "method": "GetStatus"}
        assert value(cp_text, "stratum_grpc_requests_total", **rpc, code="OK") == 3
        assert value(cp_text, "stratum_grpc_requests_total", **rpc, code="UNAUTHENTICATED") == 1
        assert value(cp_text, "stratum_grpc_request_duration_seconds_count", **rpc) == 4
        assert value(cp_text, "stratum_grpc_requests_total", service="stratum.v1.NodeAgent", method="Enroll", code="OK") == 1
        assert value(cp_text, "process_resident_memory_bytes") > 0
        assert value(cp_text, "python_info", implementation="CPython", major="3", minor="11",
                     patchlevel=__import__("platform").python_version_tuple()[2], version=__import__("platform").python_version()) == 1

        rtt_count = value(node_text, "stratum_node_heartbeat_rtt_seconds_count")
        rtt_sum = value(node_text, "stratum_node_heartbeat_rtt_seconds_sum")
        assert rtt_count >= 3 and 0 < rtt_sum / rtt_count < 5  # a loopback round trip: well under the ack deadline
        assert value(node_text, "stratum_node_session_connected") == 1
        assert value(node_text, "stratum_node_sessions_started_total") == 1
        assert value(node_text, "stratum_node_reconnect_attempts_total") == 0
        assert value(node_text, "stratum_node_bento_cache_bytes") == 0  # present; nothing fetched yet
        assert value(node_text, "process_resident_memory_bytes") > 0
        families = {f.name for f in text_string_to_metric_families(node_text)}
        assert {"stratum_node_replicas_running", "stratum_node_app_restarts"} <= families  # declared, no samples yet
    finally:
        node.stop()
        plane.stop()


def cp_grpc_stub(plane: ControlPlane):
    from stratum.v1 import control_plane_pb2_grpc as cp_grpc

    return cp_grpc.ControlPlaneStub(plane.channel())
