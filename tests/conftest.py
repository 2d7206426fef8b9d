"""Shared fixtures: real control planes and node daemons as child processes.

Under pytest-xdist (scripts/test runs several workers on few cores) each worker and everything it
starts computes on one thread: OpenMP and BLAS pools sized to the cores spin against each other's
workers, which made a numpy/scikit-learn test that takes 8 s alone take 150 s. Set before anything
loads numpy in the worker."""

from __future__ import annotations

import itertools
import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import pytest

from tests.harness import ControlPlane, NodeDaemon, xdist_worker

# Which worker runs what, and in which order: tests/grouping.py (a hook, so it is imported here).
from tests.grouping import (  # noqa: E402,F401
    pytest_addoption, pytest_collection_modifyitems, pytest_runtest_logreport, pytest_sessionfinish,
    pytest_xdist_make_scheduler)


@pytest.fixture
def control_plane(tmp_path, request):
    """A running control plane on 127.0.0.1 (SQLite store, 1 s heartbeats, 3 s node timeout, or what
    a `node_timeout` mark says); it measures replica sizes when packaging only for tests marked
    `profile_sizes`."""
    timeout = request.node.get_closest_marker("node_timeout")
    cp = ControlPlane(str(tmp_path), sizes=request.node.get_closest_marker("profile_sizes") is not None,
                      **({"node_timeout": timeout.args[0]} if timeout else {})).start()
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def module_control_plane(tmp_path_factory, request):
    """One control plane for a module whose tests each leave it as they found it (refused input,
    names of their own): one start instead of one a test."""
    cp = ControlPlane(str(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))).start()
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


_networks = itertools.count()


def _next_subnet() -> int:
    """10.<n>.0.0/24 for the next test network: 200-249 in a serial run; under xdist each worker
    cycles through its own 12 of 100-195, so bridges of two workers never share a subnet (a test
    closes its network before the worker's next one, so a worker reusing one of its own is fine)."""
    index, count = xdist_worker()
    if count == 1:
        return 200 + next(_networks) % 50
    if index >= 8:
        raise RuntimeError("tests/conftest.py gives test networks to at most 8 xdist workers")
    return 100 + index * 12 + next(_networks) % 12


@pytest.fixture
def test_network():
    """A bridge with test hosts in their own network namespaces (see tests/netns.py)."""
    from tests.netns import TestNetwork

    net = TestNetwork(_next_subnet())
    yield net
    net.close()


# Cloud stand-ins (tests/cloud.py), one of each per test module that uses them.
CLOUD_KEY, CLOUD_SECRET = "AKIATESTPOOLKEY", "test/pool+secret-never-shown"


@pytest.fixture(scope="module")
def bao(tmp_path_factory):
    """An OpenBao dev server holding the cloud keys at secret/stratum/aws (and another secret the
    control plane's policy does not cover, at secret/other/aws)."""
    from tests.cloud import OpenBao

    b = OpenBao(tmp_path_factory.mktemp("bao"))
    b.put("secret/stratum/aws", key=CLOUD_KEY, secret=CLOUD_SECRET)
    b.put("secret/other/aws", key="x", secret="y")
    yield b
    b.stop()


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """moto's EC2 API server behind the libcloud namespace adapter."""
    from tests.cloud import MotoEC2

    m = MotoEC2(tmp_path_factory.mktemp("moto"))
    yield m
    m.stop()
