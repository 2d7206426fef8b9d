"""`stratum token create|list|delete` against a real control plane: the token is printed once and
works as a read token, the list shows it without its secret, delete revokes it; a bad call says why."""

from __future__ import annotations

import subprocess

import pytest

from stratum.client import Client, ClientError
from stratum.v1 import control_plane_pb2 as cp
from tests.harness import stratum_argv


def token_cli(plane, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(stratum_argv("token", "--endpoint", plane.endpoint, "--token", plane.admin_token,
                                       "--ca-cert", plane.ca_pem_path, *args), capture_output=True, text=True,
                          timeout=60)


def test_create_list_use_and_delete(control_plane):
    made = token_cli(control_plane, "create", "grafana", "--scope", "read", "--ttl", "1h")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()  # the token alone on stdout (what a script captures); the rest on stderr
    assert secret and "\n" not in secret and "grafana" in made.stderr
    listed = token_cli(control_plane, "list")
    assert listed.returncode == 0 and "grafana" in listed.stdout and secret not in listed.stdout, listed.stdout

    viewer = Client(control_plane.endpoint, secret, control_plane.ca_pem_path)
    try:
        assert viewer.call("ListNodes", cp.ListNodesRequest()) is not None  # a read token reads
        assert token_cli(control_plane, "delete", "grafana").returncode == 0
        with pytest.raises(ClientError, match="^UNAUTHENTICATED"):
            viewer.call("ListNodes", cp.ListNodesRequest())
    finally:
        viewer.close()

    bad = token_cli(control_plane, "create", "x", "--ttl", "99999999999h")
    assert bad.returncode != 0 and "ttl" in (bad.stdout + bad.stderr), bad.stdout + bad.stderr
