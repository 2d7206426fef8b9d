"""The heartbeat sampler against /proc, bracketing counters that move while we read."""

from __future__ import annotations

import os

from node_daemon.utilisation import Sampler

MIB = 1024 * 1024


def _proc_net_dev() -> tuple[int, int]:
    rx = tx = 0
    for line in open("/proc/net/dev").readlines()[2:]:
        name, _, data = line.partition(":")
        if name.strip() == "lo":
            continue
        fields = data.split()
        rx += int(fields[0])
        tx += int(fields[8])
    return rx, tx


def _meminfo() -> dict[str, int]:
    return {line.split(":")[0]: int(line.split()[1]) for line in open("/proc/meminfo")}


def test_sample_against_proc(tmp_path):
    s = Sampler(str(tmp_path))
    before = _proc_net_dev()
    u = s.sample()
    after = _proc_net_dev()
    # Counters only grow: the sample must lie between two independent reads.
    assert before[0] <= u.net_rx_bytes <= after[0]
    assert before[1] <= u.net_tx_bytes <= after[1]

    mem = _meminfo()
    used_mb = (mem["MemTotal"] - mem["MemAvailable"]) // 1024
    assert abs(u.memory_used_mb - used_mb) <= max(64, used_mb // 10)
    assert abs(u.memory_percent - 100 * used_mb / (mem["MemTotal"] / 1024)) <= 2

    st = os.statvfs(tmp_path)
    assert abs(u.disk_free_mb - st.f_bavail * st.f_frsize // MIB) <= 256

    load1 = float(open("/proc/loadavg").read().split()[0])
    assert abs(u.load1 - load1) <= 1.0
    assert 0.0 <= u.cpu_percent <= 100.0
    assert list(u.gpu_percent) == [] or all(0 <= g <= 100 for g in u.gpu_percent)


def test_cpu_percent_sees_work(tmp_path):
    s = Sampler(str(tmp_path))
    s.sample()
    # Busy one core for a while: the next sample covers that interval, so it cannot be 0.
    x, deadline = 0, os.times().elapsed + 0.3
    while os.times().elapsed < deadline:
        x += 1
    assert s.sample().cpu_percent > 0.0
