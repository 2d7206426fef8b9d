"""The node's dask workers (node_daemon/dask_workers.py) against a real scheduler, as the training
job runs it: started from an assignment with one worker process per core the node may use,
restarted when the program dies, stopped (and their key removed) when the training leaves the
assignments; an older assignment overtaken by a newer one changes nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from control_plane.ml.dask_cluster import JobScheduler
from control_plane.ml.dask_nodes import issue_cert
from node_daemon.dask_workers import DaskWorkers, resources
from stratum import pki
from stratum.v1 import node_agent_pb2 as na

pytestmark = pytest.mark.timeout(300)


async def until(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(cond)
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_workers_start_restart_and_stop_with_the_assignments(tmp_path):
    ca_key, ca_cert = pki.make_ca()
    key, cert = issue_cert(ca_key, ca_cert, "dask-scheduler")
    wkey, wcert = issue_cert(ca_key, ca_cert, "dask-worker-node-1")
    cores, _ = resources()

    async def scenario(scheduler: JobScheduler):
        workers = DaskWorkers(str(tmp_path / "node"), "node-1", ca_cert)
        home = tmp_path / "node" / "dask" / "op-1"
        w = na.DaskWorker(training="op-1", scheduler_host="127.0.0.1", scheduler_port=scheduler.port,
                          tls_cert_pem=wcert.decode(), tls_key_pem=wkey.decode())
        await workers.apply(na.Assignments(generation=5, dask_workers=[w]))
        names = await until(lambda: sorted(v["name"] for v in scheduler.client.scheduler_info(n_workers=-1)["workers"].values())
                            if len(scheduler.client.nthreads()) == cores else None, 90, "the node's workers")
        assert names == [f"node-1-{i}" for i in range(cores)]
        assert (home / "tls" / "worker.key").stat().st_mode & 0o777 == 0o600
        assert (home / "tls" / "worker.key").read_bytes() == wkey

        # The worker program dies: it is started again, and its workers come back.
        first = workers.running["op-1"].proc
        os.killpg(first.pid, signal.SIGKILL)
        await until(lambda: workers.running["op-1"].proc is not first and len(scheduler.client.nthreads()) == cores, 90,
                    "the workers started again")

        # An older message overtaken by this one changes nothing; a newer one without the training stops them.
        await workers.apply(na.Assignments(generation=4))
        assert "op-1" in workers.running
        proc = workers.running["op-1"].proc
        await workers.apply(na.Assignments(generation=6))
        assert not workers.running and proc.poll() is not None
        assert not home.exists() and (tmp_path / "node" / "dask" / "last-worker.log").exists()
        await until(lambda: not scheduler.client.nthreads(), 30, "the workers gone from the scheduler")
        await workers.close()

    with JobScheduler("127.0.0.1", ca_cert.decode(), cert.decode(), key.decode()) as scheduler:
        asyncio.run(scenario(scheduler))
