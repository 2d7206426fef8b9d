"""Shared fixtures: real control planes and node daemons as child processes."""

from __future__ import annotations

import pytest

from tests.harness import ControlPlane, NodeDaemon


@pytest.fixture
def control_plane(tmp_path):
    """A running control plane on 127.0.0.1 (SQLite store, 1 s heartbeats, 3 s node timeout)."""
    cp = ControlPlane(str(tmp_path)).start()
    yield cp
    cp.stop()


@pytest.fixture
def start_node(tmp_path, control_plane):
    """start_node(name, tier="", labels=None, join_token=<bootstrap>, netns=None) -> running NodeDaemon."""
    started: list[NodeDaemon] = []

    def start(name: str, tier: str = "", labels: dict | None = None, join_token: str | None = None, netns: str | None = None,
              server: str | None = None) -> NodeDaemon:
        node = NodeDaemon(str(tmp_path), name, server or control_plane.endpoint, join_token or control_plane.join_token,
                          tier=tier, labels=labels, netns=netns)
        started.append(node.start())
        return node

    yield start
    for node in started:
        node.stop()


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL 15 cluster for the session; tests create their own databases."""
    from tests.postgres import PostgresCluster

    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


_db_counter = iter(range(1_000_000))


@pytest.fixture
def postgres_url(postgres):
    """URL of a fresh, empty database."""
    return postgres.create_database(f"t{next(_db_counter)}")


_subnets = iter(range(200, 250))


@pytest.fixture
def test_network():
    """A bridge with test hosts in their own network namespaces (see tests/netns.py)."""
    from tests.netns import TestNetwork

    net = TestNetwork(next(_subnets))
    yield net
    net.close()
