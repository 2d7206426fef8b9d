"""A client in another language (Node.js, @grpc/grpc-js) against a real control plane.

tests/js/client.js knows no Stratum .proto: it lists the services through server reflection,
builds its ControlPlane client from the descriptors the server sends, and calls ListNodes and
GetNode with the admin token over TLS, checking the server against the control plane's CA.
scripts/setup installs its packages into tests/js/node_modules (`npm ci`, from the lock file).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.harness import REPO, ControlPlane, NodeDaemon, wait_for

JS = os.path.join(REPO, "tests", "js")
NODE = shutil.which("node") or "node"  # scripts/setup installs Node.js where it is missing


def run_client(plane: ControlPlane, node_name: str, token: str | None = None) -> dict:
    if not os.path.isdir(os.path.join(JS, "node_modules", "@grpc", "grpc-js")):
        pytest.fail("tests/js/node_modules is missing: run ./scripts/setup (it runs `npm ci` in tests/js)")
    env = {**os.environ, "STRATUM_ENDPOINT": plane.endpoint, "STRATUM_CA_CERT": plane.ca_pem_path,
           "STRATUM_TOKEN": token or plane.admin_token, "STRATUM_NODE": node_name}
    done = subprocess.run([NODE, os.path.join(JS, "client.js")], env=env, cwd=JS, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"client.js failed (rc {done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def plane_with_node(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("js-client"))
    plane = ControlPlane(work).start()
    node = NodeDaemon(work, "edge-js", plane.endpoint, plane.join_token, tier="edge", labels={"zone": "north"}).start()
    try:
        client = plane.client()
        wait_for(lambda: client.nodes().get("edge-js"), 60, what="node edge-js to enroll")
        yield plane, client.nodes()["edge-js"]
        client.close()
    finally:
        node.stop()
        plane.stop()


def test_a_grpc_js_client_finds_the_api_by_reflection_and_reads_nodes(plane_with_node):
    plane, node = plane_with_node
    out = run_client(plane, "edge-js")

    assert {"stratum.v1.ControlPlane", "stratum.v1.NodeAgent", "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection"} <= set(out["services"])
    listed = out["list_nodes"]
    assert listed["code"] == "OK", listed
    assert [n["name"] for n in listed["nodes"]] == ["edge-js"]
    seen = listed["nodes"][0]
    # What grpc-js decoded from the reflected descriptors is what the Python stubs decode.
    assert (seen["id"], seen["tier"], seen["labels"], seen["cpu_cores"]) == \
        (node.id, "edge", dict(node.labels), node.capabilities.cpu_cores)
    assert seen["state"] in ("ready", "down") and seen["cpu_cores"] >= 1
    assert out["get_node"]["code"] == "OK" and out["get_node"]["node"]["id"] == node.id


def test_without_the_token_it_is_unauthenticated_and_a_huge_name_gets_a_short_not_found(plane_with_node):
    plane, _ = plane_with_node
    out = run_client(plane, "no-such-node")

    assert out["no_token"]["code"] == "UNAUTHENTICATED"
    assert "missing admin token" in out["no_token"]["details"]
    assert out["get_node"]["code"] == "NOT_FOUND" and "no-such-node" in out["get_node"]["details"]
    # An 8 KB name once made a status larger than grpc-js's metadata limit: no status until the deadline.
    huge = out["huge_name"]
    assert huge["code"] == "NOT_FOUND", huge
    assert len(huge["details"]) <= 1024 and "x" * 8192 not in huge["details"]


def test_a_wrong_token_is_unauthenticated_for_the_js_client_too(plane_with_node):
    plane, _ = plane_with_node
    out = run_client(plane, "edge-js", token="not-the-admin-token")

    assert out["list_nodes"]["code"] == "UNAUTHENTICATED" and "admin token rejected" in out["list_nodes"]["details"]
    assert out["list_nodes"]["nodes"] == [] and out["get_node"]["node"] is None
    assert out["services"]  # reflection itself needs no token, as for any gRPC client
