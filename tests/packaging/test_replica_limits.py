"""A real `bentoml serve` replica in a cgroup of its own: its processes, workers included, are in
it; its cpu quota and memory limit change while it serves (vertical scaling); stopping it removes
the group."""

from __future__ import annotations

import urllib.request
import uuid

import pytest

from stratum.runtime.cgroups import Cgroups
from stratum.runtime.runner import ReplicaRunner

pytestmark = pytest.mark.timeout(180)


def test_limits_of_a_serving_replica_change_without_a_restart(pk_root, built):
    art, home = built
    cg = Cgroups.detect(prefix=f"stratum-test-{uuid.uuid4().hex[:8]}")
    assert cg is not None, "no cgroup cpu/memory controllers under /sys/fs/cgroup"
    runner = ReplicaRunner(home, pk_root / "run-limits", cgroups=cg)
    replica = runner.start(art.tag, workers=2, replica_id="limited", limits=(1.0, 600))
    try:
        in_group = set(cg.pids("limited"))
        assert set(replica.pids()) <= in_group and len(replica.pids()) >= 3  # arbiter + 2 workers
        assert cg.read("limited") == {"cpu": 1.0, "memory_mb": 600}
        runner.set_limits(replica, 0.5, 800)
        assert cg.read("limited") == {"cpu": 0.5, "memory_mb": 800}
        req = urllib.request.Request(replica.url + "/healthz")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200  # still serving, same process
        assert replica.alive()
    finally:
        runner.stop(replica)
    assert not any(d.exists() for d in cg.dirs("limited"))
    for base in ({cg.root / cg.prefix} if cg.mode == "v2" else {cg.root / "cpu" / cg.prefix, cg.root / "memory" / cg.prefix}):
        if base.exists():
            base.rmdir()
