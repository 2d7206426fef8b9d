"""Per-replica cgroups against this machine's real cgroup filesystem (v1 controllers here; v2
where the host has them): a process moved in, limits set and changed while it runs, removed."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from stratum.runtime.cgroups import CgroupError, Cgroups


@pytest.fixture
def cg():
    found = Cgroups.detect(prefix=f"stratum-test-{uuid.uuid4().hex[:8]}")
    if found is None:  # a machine without cgroup controllers fails loudly: the product needs them for limits
        pytest.fail("no cgroup v2 (cpu, memory) or v1 (cpu, memory) controllers found under /sys/fs/cgroup")
    yield found
    for base in ({found.root / found.prefix} if found.mode == "v2" else
                 {found.root / "cpu" / found.prefix, found.root / "memory" / found.prefix}):
        if base.exists():
            for child in base.iterdir():
                if child.is_dir():
                    child.rmdir()
            base.rmdir()


def test_a_process_gets_limits_that_change_while_it_runs(cg):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        cg.create("r1")
        cg.add("r1", proc.pid)
        assert proc.pid in cg.pids("r1")
        cg.set("r1", cpu=0.5, memory_mb=256)
        assert cg.read("r1") == {"cpu": 0.5, "memory_mb": 256}
        cg.set("r1", cpu=2.0, memory_mb=1024)  # vertical change, no restart
        assert cg.read("r1") == {"cpu": 2.0, "memory_mb": 1024} and proc.poll() is None
        cg.set("r1")  # no limits
        assert cg.read("r1") == {"cpu": None, "memory_mb": None}
        with pytest.raises(CgroupError, match="still has processes"):
            cg.remove("r1", timeout=0.2)
    finally:
        proc.kill()
        proc.wait()
    cg.remove("r1")
    assert not any(d.exists() for d in cg.dirs("r1"))


def test_a_memory_limit_is_enforced(cg):
    cg.create("hog")
    cg.set("hog", memory_mb=64)
    code = "import os, sys; open('/proc/self/cgroup'); x = bytearray(256 * 2**20); print('survived')"
    proc = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(0.3); {code}"], stdout=subprocess.PIPE)
    cg.add("hog", proc.pid)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode != 0 and b"survived" not in out  # killed, or MemoryError, inside 64 MiB
    cg.remove("hog")
